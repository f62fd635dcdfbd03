"""ryanuber/go-glob, the matcher Vault's plugins use for bound names: only `*` is special."""


def glob(pattern, subj):
    """True when subj matches pattern, where `*` matches any run of characters."""
    if pattern == "":
        return subj == pattern
    if pattern == "*":
        return True
    parts = pattern.split("*")
    if len(parts) == 1:
        return subj == pattern
    leading = not pattern.startswith("*")
    trailing = not pattern.endswith("*")
    end = len(parts) - 1
    for i in range(end):
        idx = subj.find(parts[i])
        if i == 0:
            if leading and idx != 0:
                return False
        elif idx < 0:
            return False
        subj = subj[idx + len(parts[i]):]
    return not trailing or subj.endswith(parts[end])


def list_contains_glob(patterns, item):
    """strutil.StrListContainsGlob."""
    return any(glob(p, item) for p in patterns)
