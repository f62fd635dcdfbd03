// CurlTransport over real HTTPS: a Python HTTPS server (https_echo_server.py) with a test
// CA made by the openssl command at suite start.  Verification against ca_file, a wrong CA
// refused with a clear error, tls_skip_verify, tls_server_name (certificate for a name,
// connection to 127.0.0.1), client certificates, and 307 redirects of POST and PUT keeping
// method and body, at most three hops, never from https to http.

#include <event2/event.h>
#include <gtest/gtest.h>
#include <jansson.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include "controller/curl_transport.hpp"
#include "controller/wiping_memory.hpp"

extern char** environ;

namespace pgbv::ctl {
namespace {

using namespace std::chrono_literals;

std::string g_dir;  // the suite's certificates

bool run(const std::string& command) {
    return std::system((command + " >/dev/null 2>&1").c_str()) == 0;
}

// A CA, and a certificate it signs for `cn` with `ext` (e.g. subjectAltName=DNS:x).
bool make_ca(const std::string& name) {
    return run(
            "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
            "-subj /CN=" +
            name + " -keyout " + g_dir + "/" + name + ".key -out " + g_dir + "/" + name + ".pem");
}

bool make_cert(const std::string& name, const std::string& ca, const std::string& cn,
               const std::string& ext) {
    const std::string base = g_dir + "/" + name;
    std::ofstream(base + ".ext") << ext << "\n";
    return run("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=" + cn +
               " -keyout " + base + ".key -out " + base + ".csr") &&
           run("openssl x509 -req -days 2 -in " + base + ".csr -CA " + g_dir + "/" + ca +
               ".pem -CAkey " + g_dir + "/" + ca + ".key -CAcreateserial -out " + base +
               ".pem -extfile " + base + ".ext");
}

std::string json_str(const std::string& body, const char* key) {
    json_t* o = json_loads(body.c_str(), 0, nullptr);
    std::string v;
    if (json_t* f = json_object_get(o, key); f && json_is_string(f)) v = json_string_value(f);
    json_decref(o);
    return v;
}

// The HTTPS echo server as a child process.
class EchoServer {
public:
    EchoServer(const std::vector<std::string>& extra) {
        port_file_ = g_dir + "/port-" + std::to_string(++serial_);
        std::vector<std::string> args = {"/usr/bin/python3",
                                         PGBV_TLS_ECHO_SERVER,
                                         "--cert",
                                         g_dir + "/server.pem",
                                         "--key",
                                         g_dir + "/server.key",
                                         "--port-file",
                                         port_file_};
        args.insert(args.end(), extra.begin(), extra.end());
        std::vector<char*> argv;
        for (auto& a : args)
            argv.push_back(a.data());
        argv.push_back(nullptr);
        if (posix_spawn(&pid_, argv[0], nullptr, nullptr, argv.data(), environ) != 0) pid_ = -1;
        const auto end = std::chrono::steady_clock::now() + 20s;
        while (pid_ > 0 && port_ == 0 && std::chrono::steady_clock::now() < end) {
            std::ifstream in(port_file_);
            in >> port_;
            if (port_ == 0) std::this_thread::sleep_for(20ms);
        }
    }
    ~EchoServer() {
        if (pid_ > 0) {
            ::kill(pid_, SIGTERM);
            ::waitpid(pid_, nullptr, 0);
        }
    }
    int port() const { return port_; }

private:
    static inline int serial_ = 0;
    pid_t pid_ = -1;
    int port_ = 0;
    std::string port_file_;
};

class TlsTransport : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        std::string error;
        ASSERT_TRUE(init_curl_plain(&error)) << error;
        char tmpl[] = "/tmp/pgbv-tls-XXXXXX";
        g_dir = mkdtemp(tmpl);
        ready_ = make_ca("ca") && make_ca("other-ca") &&
                 make_cert("server", "ca", "vault.test.internal",
                           "subjectAltName=DNS:vault.test.internal") &&
                 make_cert("client", "ca", "pgbv-controller", "extendedKeyUsage=clientAuth");
    }
    static void TearDownTestSuite() { std::system(("rm -rf " + g_dir).c_str()); }

    void SetUp() override {
        ASSERT_TRUE(ready_) << "the openssl command could not make the test certificates";
        base_.reset(event_base_new());
    }

    void serve(const std::vector<std::string>& extra = {}) {
        server_ = std::make_unique<EchoServer>(extra);
        ASSERT_GT(server_->port(), 0) << "the HTTPS echo server did not start";
    }

    // The usual options: the test CA, the certificate's name.
    static CurlTransport::Options verified() {
        CurlTransport::Options o;
        o.ca_file = g_dir + "/ca.pem";
        o.tls_server_name = "vault.test.internal";
        return o;
    }

    HttpResponse fetch(const CurlTransport::Options& options, const std::string& method,
                       const std::string& path, const std::string& body = "") {
        CurlTransport transport(base_.get(), options);
        HttpRequest r;
        r.method = method;
        r.url = "https://127.0.0.1:" + std::to_string(server_->port()) + path;
        r.timeout = 10s;
        r.body.assign(body);
        r.secret_header.assign("X-Vault-Token: hvs.test-token");
        std::optional<HttpResponse> got;
        auto call =
                transport.start(std::move(r), [&](HttpResponse resp) { got = std::move(resp); });
        const auto end = std::chrono::steady_clock::now() + 15s;
        while (!got && std::chrono::steady_clock::now() < end) {
            event_base_loop(base_.get(), EVLOOP_ONCE | EVLOOP_NONBLOCK);
            std::this_thread::sleep_for(200us);
        }
        EXPECT_TRUE(got.has_value()) << "no answer";
        return got ? std::move(*got) : HttpResponse{};
    }

    static inline bool ready_ = false;
    UniqueEventBase base_;
    std::unique_ptr<EchoServer> server_;
};

TEST_F(TlsTransport, VerifiedAgainstTheCaFileAndTheServerName) {
    serve();
    HttpResponse r = fetch(verified(), "GET", "/echo");
    ASSERT_FALSE(r.failed()) << r.error;
    EXPECT_EQ(r.status, 200);
    const std::string body(r.body.view());
    EXPECT_EQ(json_str(body, "path"), "/echo");
    // The name is the Host (and SNI) while the connection went to 127.0.0.1.
    EXPECT_EQ(json_str(body, "host"), "vault.test.internal:" + std::to_string(server_->port()));
    EXPECT_EQ(json_str(body, "token"), "hvs.test-token");
    const std::string tls = json_str(body, "tls");
    EXPECT_TRUE(tls == "TLSv1.2" || tls == "TLSv1.3") << tls;
}

TEST_F(TlsTransport, WithoutTheServerNameTheIpDoesNotMatchTheCertificate) {
    serve();
    CurlTransport::Options o = verified();
    o.tls_server_name.clear();
    HttpResponse r = fetch(o, "GET", "/echo");
    ASSERT_TRUE(r.failed());
    EXPECT_NE(r.error.find("127.0.0.1"), std::string::npos) << r.error;
}

TEST_F(TlsTransport, AWrongCaIsRefusedWithAClearError) {
    serve();
    CurlTransport::Options o = verified();
    o.ca_file = g_dir + "/other-ca.pem";
    HttpResponse r = fetch(o, "GET", "/echo");
    ASSERT_TRUE(r.failed());
    EXPECT_EQ(r.status, 0);
    EXPECT_NE(r.error.find("certificate"), std::string::npos) << r.error;
}

TEST_F(TlsTransport, SkipVerifyAcceptsAnyCertificate) {
    serve();
    CurlTransport::Options o;
    o.ca_file = g_dir + "/other-ca.pem";
    o.skip_verify = true;
    HttpResponse r = fetch(o, "GET", "/echo");
    ASSERT_FALSE(r.failed()) << r.error;
    EXPECT_EQ(r.status, 200);
}

TEST_F(TlsTransport, ClientCertificateIsPresented) {
    serve({"--client-ca", g_dir + "/ca.pem", "--require-client-cert"});
    HttpResponse without = fetch(verified(), "GET", "/echo");
    EXPECT_TRUE(without.failed()) << "the server requires a client certificate";
    CurlTransport::Options o = verified();
    o.client_cert = g_dir + "/client.pem";
    o.client_key = g_dir + "/client.key";
    HttpResponse r = fetch(o, "GET", "/echo");
    ASSERT_FALSE(r.failed()) << r.error;
    EXPECT_EQ(json_str(std::string(r.body.view()), "client_cn"), "pgbv-controller");
}

TEST_F(TlsTransport, AnUnreadableClientKeyFailsClearly) {
    serve();
    CurlTransport::Options o = verified();
    o.client_cert = g_dir + "/client.pem";
    o.client_key = g_dir + "/no-such.key";
    HttpResponse r = fetch(o, "GET", "/echo");
    ASSERT_TRUE(r.failed());
    EXPECT_FALSE(r.error.empty());
}

TEST_F(TlsTransport, RedirectsKeepMethodAndBody) {
    // A standby answers 307: POST and PUT must arrive at the active node as sent.
    serve();
    for (const char* method : {"POST", "PUT"}) {
        HttpResponse r = fetch(verified(), method, "/redirect/3", R"({"role_id":"x"})");
        ASSERT_FALSE(r.failed()) << r.error;
        const std::string body(r.body.view());
        EXPECT_EQ(json_str(body, "path"), "/echo") << body;
        EXPECT_EQ(json_str(body, "method"), method);
        EXPECT_EQ(json_str(body, "body"), R"({"role_id":"x"})");
        EXPECT_EQ(json_str(body, "token"), "hvs.test-token");
    }
}

TEST_F(TlsTransport, AtMostThreeRedirects) {
    serve();
    HttpResponse r = fetch(verified(), "GET", "/redirect/4");
    EXPECT_TRUE(r.failed());
    EXPECT_NE(r.error.find("redirect"), std::string::npos) << r.error;
    r = fetch(verified(), "GET", "/loop");
    EXPECT_TRUE(r.failed());
}

TEST_F(TlsTransport, NeverFromHttpsToHttp) {
    serve();
    HttpResponse r = fetch(verified(), "POST", "/to-http", "{}");
    ASSERT_TRUE(r.failed()) << r.status;
    EXPECT_FALSE(r.error.empty());
}

}  // namespace
}  // namespace pgbv::ctl
