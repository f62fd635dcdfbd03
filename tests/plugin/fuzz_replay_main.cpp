// Runs a libFuzzer target over every file of the given files and directories, so that the
// target and its corpus are exercised by ctest in builds without libFuzzer (gcc).
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

int run_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        std::fprintf(stderr, "cannot read %s\n", path.c_str());
        return 1;
    }
    const std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                          std::istreambuf_iterator<char>());
    LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
        return 2;
    }
    int files = 0;
    int failures = 0;
    for (int i = 1; i < argc; ++i) {
        const std::filesystem::path arg(argv[i]);
        if (std::filesystem::is_directory(arg)) {
            for (const auto& entry : std::filesystem::recursive_directory_iterator(arg)) {
                if (!entry.is_regular_file()) continue;
                failures += run_file(entry.path());
                ++files;
            }
        } else {
            failures += run_file(arg);
            ++files;
        }
    }
    // Also the inputs the seeds cannot express: empty and single bytes.
    LLVMFuzzerTestOneInput(nullptr, 0);
    for (int b = 0; b < 256; ++b) {
        const auto byte = static_cast<std::uint8_t>(b);
        LLVMFuzzerTestOneInput(&byte, 1);
    }
    std::printf("replayed %d corpus file(s)\n", files);
    if (files == 0) {
        std::fprintf(stderr, "no corpus files found\n");
        return 1;
    }
    return failures == 0 ? 0 : 1;
}
