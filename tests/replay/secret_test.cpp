// Secrets in a trace: the digest record checks the right secret only, and a redacted read restores byte for byte.
#include "../support/reprise_test.hpp"

#include <string>
#include <vector>

using namespace reprise;

TEST_CASE("a secret's record matches that secret only, and never holds it") {
    const std::string secret = "hunter2-and-more";
    const std::string value = trace::secret_value(secret);
    CHECK(value.size() == trace::secret_value_bytes);
    CHECK(value.find(secret) == std::string::npos);
    CHECK(trace::secret_matches(value, secret));
    CHECK_FALSE(trace::secret_matches(value, "hunter2-and-mora"));
    CHECK_FALSE(trace::secret_matches(value, ""));
    CHECK_FALSE(trace::secret_matches(value.substr(1), secret));
    CHECK(trace::secret_value(secret) != value);  // salted: two recordings differ
}

TEST_CASE("a secret split over reads at any offset is redacted from each and restored exactly") {
    const std::vector<std::string> secrets{"s3cret-pass", "other"};
    const std::string stream = "*2\r\n$4\r\nAUTH\r\n$11\r\ns3cret-pass\r\nECHO other s3cret-pass\r\n";
    for (std::size_t a = 1; a < stream.size(); ++a) {
        for (std::size_t b = a; b < stream.size(); b += 3) {
            const std::string parts[] = {stream.substr(0, a), stream.substr(a, b - a), stream.substr(b)};
            std::string recorded_all;
            for (const std::string& part : parts) {
                std::string data = std::string(part);
                std::int64_t trailer = 0;
                std::string redacted;
                if (trace::redact_read(part, secrets, redacted, trailer)) {
                    data = redacted;
                    std::string restored;
                    REQUIRE_FALSE(trace::unredact_read(data, trailer, secrets, restored).has_value());
                    REQUIRE(restored == part);
                    recorded_all += data.substr(0, data.size() - static_cast<std::size_t>(trailer));
                } else {
                    recorded_all += part;
                }
            }
            INFO("cuts at " << a << " and " << b << ": " << recorded_all);
            REQUIRE(recorded_all.find("s3") == std::string::npos);
            REQUIRE(recorded_all.find("pass") == std::string::npos);
            REQUIRE(recorded_all.find("ther") == std::string::npos);
        }
    }
}

TEST_CASE("a damaged or foreign redaction trailer is refused with a reason, never trusted") {
    const std::vector<std::string> secrets{"s3cret"};
    std::string redacted;
    std::int64_t trailer = 0;
    REQUIRE(trace::redact_read("AUTH s3cret\r\n", secrets, redacted, trailer));
    std::string out;
    CHECK(trace::unredact_read(redacted, trailer, {}, out).has_value());  // the secret not supplied
    CHECK(trace::unredact_read(redacted, trailer + 16, secrets, out).has_value());
    CHECK(trace::unredact_read(redacted, 7, secrets, out).has_value());
    std::string bad = redacted;
    bad[bad.size() - 16] = '\x7f';  // the span's offset beyond the bytes
    CHECK(trace::unredact_read(bad, trailer, secrets, out).has_value());
    trace::Wake w{.wake = WakeKind::bytes_read, .handle = 3, .value = 5, .data = redacted};
    CHECK(trace::check(w).has_value());
    w.value = trailer;
    CHECK_FALSE(trace::check(w).has_value());
}
