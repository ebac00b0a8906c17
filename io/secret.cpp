// read_secret(): the file is read outside the journal (both recording and replay read it), then the journal sees it.
#include "reprise/io/secret.hpp"

#include "reprise/runtime/internal/core.hpp"
#include "reprise/runtime/internal/journal.hpp"

#include <sodium.h>

#include <cerrno>
#include <cstdlib>
#include <fcntl.h>
#include <fmt/core.h>
#include <unistd.h>

namespace reprise {

namespace {

/// The environment variable that names the file replay reads a secret from instead.
std::string secret_env_var(std::string_view name) {
    std::string var = "REPRISE_SECRET_FILE_";
    for (char ch : name)
        var += ch == '-' ? '_' : static_cast<char>(ch >= 'a' && ch <= 'z' ? ch - 'a' + 'A' : ch);
    return var;
}

/// The file replay reads instead of `path`, when the environment names one.
std::string replay_path(std::string_view name, const std::string& path) {
    const std::string var = secret_env_var(name);
    const char* p = std::getenv(var.c_str());  // reprise-allow: env (where replay finds a secret that is never recorded)
    return p != nullptr && *p != '\0' ? std::string(p) : path;
}

// A blocking read of a small local file, at start-up: the secret must not pass through the
// offload journal (which would record its bytes).
Result<std::string> read_small_file(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);  // reprise-allow: io (a secret is read outside the journal)
    if (fd < 0)
        return error_from_errno(errno);
    std::string bytes;
    char buf[1024];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);  // reprise-allow: io (a secret is read outside the journal)
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            ::close(fd);
            return error_from_errno(e);
        }
        if (n == 0)
            break;
        bytes.append(buf, static_cast<std::size_t>(n));
        if (bytes.size() > limits::secret_bytes_max + 2) {
            ::close(fd);
            return Errc::limit;
        }
    }
    ::close(fd);
    if (!bytes.empty() && bytes.back() == '\n')
        bytes.pop_back();
    if (!bytes.empty() && bytes.back() == '\r')
        bytes.pop_back();
    if (bytes.size() > limits::secret_bytes_max)
        return Errc::limit;
    if (bytes.empty())
        return Errc::invalid_argument;
    return bytes;
}

} // namespace

Result<std::string> read_secret(std::string_view name, const std::string& path) {
    Runtime::Impl& rt = detail::current_runtime("read_secret()");
    REPRISE_ASSERT_MSG(!name.empty() && name.size() <= 64, "a secret's name is 1 to 64 bytes");
    const std::string from = rt.replaying() ? replay_path(name, path) : path;
    auto bytes = read_small_file(from);
    if (!bytes.ok()) {
        if (rt.replaying())  // the program's own message follows; say where replay looked and what else it takes
            fmt::print(stderr,
                       "reprise: replay reads the secret \"{}\" again, from {} ({}): give the file the recording read "
                       "(a relative path is taken from this process's folder), or name another in {}\n",
                       name, from, bytes.error().message(), secret_env_var(name));
        return bytes;
    }
    if (rt.journal)
        rt.journal->secret(name, *bytes);
    return bytes;
}

bool secrets_equal(std::string_view a, std::string_view b) noexcept {
    // Hash both to a fixed size, so neither the length nor the first difference shows in the time.
    unsigned char ha[crypto_generichash_BYTES];
    unsigned char hb[crypto_generichash_BYTES];
    crypto_generichash(ha, sizeof ha, reinterpret_cast<const unsigned char*>(a.data()), a.size(), nullptr, 0);
    crypto_generichash(hb, sizeof hb, reinterpret_cast<const unsigned char*>(b.data()), b.size(), nullptr, 0);
    return crypto_verify_32(ha, hb) == 0;
}

} // namespace reprise
