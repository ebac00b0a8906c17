// What a trace keeps of a secret: a salted digest, and redacted reads that replay restores.
#include "reprise/record/trace.hpp"

#include "reprise/runtime/assert.hpp"

#include <sodium.h>

#include <cstring>
#include <fmt/core.h>

namespace reprise::trace {

namespace {

std::string keyed_digest(std::string_view secret, std::string_view salt) {
    static_assert(secret_salt_bytes >= crypto_generichash_KEYBYTES_MIN);
    static_assert(secret_digest_bytes == crypto_generichash_BYTES);
    unsigned char out[secret_digest_bytes];
    crypto_generichash(out, sizeof out, reinterpret_cast<const unsigned char*>(secret.data()), secret.size(),
                       reinterpret_cast<const unsigned char*>(salt.data()), salt.size());
    return std::string(reinterpret_cast<const char*>(out), sizeof out);
}

struct Span {
    std::uint32_t offset, length, secret, secret_offset;
};

void put_u32(std::string& out, std::uint32_t v) {
    for (int i = 0; i < 4; ++i)
        out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::uint32_t get_u32(const char* p) {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i)
        v |= static_cast<std::uint32_t>(static_cast<unsigned char>(p[i])) << (8 * i);
    return v;
}

} // namespace

std::string secret_value(std::string_view secret) {
    REPRISE_ASSERT(sodium_init() >= 0);
    std::string salt(secret_salt_bytes, '\0');
    // reprise-allow: random (a salt only the trace keeps; the program never sees it)
    randombytes_buf(salt.data(), salt.size());
    std::string value = salt + keyed_digest(secret, salt);
    REPRISE_ASSERT(value.size() == secret_value_bytes);
    return value;
}

bool secret_matches(std::string_view value, std::string_view secret) noexcept {
    if (value.size() != secret_value_bytes)
        return false;
    const std::string d = keyed_digest(secret, value.substr(0, secret_salt_bytes));
    return crypto_verify_32(reinterpret_cast<const unsigned char*>(d.data()),
                            reinterpret_cast<const unsigned char*>(value.data() + secret_salt_bytes)) == 0;
}

bool holds_secret(std::string_view bytes, const std::vector<std::string>& secrets) noexcept {
    for (const std::string& s : secrets)
        if (bytes.find(s) != std::string_view::npos)
            return true;
    return false;
}

// Every whole occurrence, and the pieces a secret split over several reads leaves in one: the
// longest tail that begins a secret, the longest head that ends one, and a read lying wholly
// inside one. A piece may be a coincidence (a read ending in the secret's first byte): it is
// redacted all the same, which costs nothing but a span, since replay restores the same bytes.
bool redact_read(std::string_view bytes, const std::vector<std::string>& secrets, std::string& out,
                 std::int64_t& trailer_bytes) {
    std::vector<Span> spans;
    const std::size_t n = bytes.size();
    for (std::uint32_t i = 0; i < secrets.size(); ++i) {
        const std::string_view s = secrets[i];
        REPRISE_ASSERT(!s.empty());
        for (std::size_t at = bytes.find(s); at != std::string_view::npos; at = bytes.find(s, at + 1))
            spans.push_back({static_cast<std::uint32_t>(at), static_cast<std::uint32_t>(s.size()), i, 0});
        if (n == 0)
            continue;
        if (n < s.size() && s.find(bytes) != std::string_view::npos) {
            spans.push_back({0, static_cast<std::uint32_t>(n), i, static_cast<std::uint32_t>(s.find(bytes))});
            continue;
        }
        for (std::size_t k = std::min(s.size() - 1, n); k >= 1; --k)  // tail == s[0, k)
            if (s[k - 1] == bytes[n - 1] && bytes.substr(n - k) == s.substr(0, k)) {
                spans.push_back({static_cast<std::uint32_t>(n - k), static_cast<std::uint32_t>(k), i, 0});
                break;
            }
        for (std::size_t k = std::min(s.size() - 1, n); k >= 1; --k)  // head == s[len - k, len)
            if (s[s.size() - k] == bytes[0] && bytes.substr(0, k) == s.substr(s.size() - k)) {
                spans.push_back({0, static_cast<std::uint32_t>(k), i, static_cast<std::uint32_t>(s.size() - k)});
                break;
            }
    }
    if (spans.empty())
        return false;
    out.assign(bytes);
    for (const Span& sp : spans)
        std::memset(out.data() + sp.offset, redaction_fill, sp.length);
    for (const Span& sp : spans) {
        put_u32(out, sp.offset);
        put_u32(out, sp.length);
        put_u32(out, sp.secret);
        put_u32(out, sp.secret_offset);
    }
    trailer_bytes = static_cast<std::int64_t>(spans.size() * redaction_bytes);
    return true;
}

std::optional<std::string> unredact_read(std::string_view data, std::int64_t trailer_bytes,
                                         const std::vector<std::string>& secrets, std::string& out) {
    if (trailer_bytes <= 0 || trailer_bytes % static_cast<std::int64_t>(redaction_bytes) != 0 ||
        static_cast<std::uint64_t>(trailer_bytes) > data.size())
        return fmt::format("a redaction trailer of {} bytes in {} bytes of data", trailer_bytes, data.size());
    const std::size_t n = data.size() - static_cast<std::size_t>(trailer_bytes);
    out.assign(data.substr(0, n));
    for (std::size_t at = n; at < data.size(); at += redaction_bytes) {
        const char* p = data.data() + at;
        const Span sp{get_u32(p), get_u32(p + 4), get_u32(p + 8), get_u32(p + 12)};
        if (sp.secret >= secrets.size())
            return fmt::format("the bytes read are redacted for secret #{} (in the order the program reads its "
                               "secrets), which the program has not supplied",
                               sp.secret);
        const std::string& s = secrets[sp.secret];
        if (std::uint64_t{sp.offset} + sp.length > n || std::uint64_t{sp.secret_offset} + sp.length > s.size())
            return fmt::format("a redacted span (offset {}, {} bytes) outside the bytes read or the secret", sp.offset,
                               sp.length);
        std::memcpy(out.data() + sp.offset, s.data() + sp.secret_offset, sp.length);
    }
    return std::nullopt;
}

} // namespace reprise::trace
