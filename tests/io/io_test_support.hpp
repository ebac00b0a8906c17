// Helpers shared by the io/ tests: seeds, byte patterns, loopback pairs, temporary folders.
#pragma once

#include <reprise/runtime/reprise.hpp>

#include <catch2/catch.hpp>
#include <fmt/core.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace Catch {
template <>
struct StringMaker<reprise::Errc> {
    static std::string convert(reprise::Errc e) {
        return static_cast<int>(e) == 0 ? std::string("ok") : std::string(reprise::errc_name(e));
    }
};
} // namespace Catch

namespace reprise::test {

using namespace std::chrono_literals;

/// A deadline no healthy run comes near; it turns a hang into a failure.
inline constexpr Duration generous = std::chrono::seconds(30);

inline constexpr std::size_t KiB = 1024;
inline constexpr std::size_t MiB = 1024 * 1024;

/// Runtime options with a given PRNG seed.
inline Options seeded(std::uint64_t seed) {
    Options o;
    o.seed = seed;
    return o;
}

/// Runtime options with a given number of offload threads.
inline Options with_offload_threads(std::size_t threads) {
    Options o;
    o.offload_threads = threads;
    return o;
}

/// The outcome of an operation as one comparable value: Errc{} (printed "ok") on success.
template <class T>
Errc outcome(const Result<T>& r) {
    return r.ok() ? Errc{} : r.code();
}

/// An outcome a task can return (a Result<Errc> cannot exist: its two constructors clash).
struct Outcome {
    Errc code{};
};
template <class T>
Outcome task_outcome(const Result<T>& r) {
    return Outcome{outcome(r)};
}

/// The value of `r`, or an exception that ends the scenario (and so the test) with
/// a message. Tests and scenarios use it instead of Catch's macros: they also run in replay
/// children, where only the log and the exit status reach the test.
template <class T>
T must(Result<T> r, std::string_view what) {
    if (!r.ok())
        throw std::runtime_error(fmt::format("{} failed: {}", what, r.error().message()));
    return std::move(r).value();
}
inline void must(Result<void> r, std::string_view what) {
    if (!r.ok())
        throw std::runtime_error(fmt::format("{} failed: {}", what, r.error().message()));
}

/// The seed of a test that draws random numbers: REPRISE_TEST_SEED when set, else
/// a fresh one. Printed either way so that a failing run can be repeated.
inline std::uint64_t test_seed(std::string_view test_name) {
    std::uint64_t seed = 0;
    if (const char* env = std::getenv("REPRISE_TEST_SEED"); env && *env)
        seed = std::strtoull(env, nullptr, 0);
    else
        seed = (static_cast<std::uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
    std::printf("%.*s: seed=%llu (REPRISE_TEST_SEED=%llu repeats it)\n", static_cast<int>(test_name.size()),
                test_name.data(), static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
    std::fflush(stdout);
    return seed;
}

/// Byte `i` of an endless pattern with no short period: a lost, repeated or
/// reordered chunk shows as a mismatch at its offset.
inline char pattern_at(std::uint64_t i) noexcept {
    return static_cast<char>((i * 0x9E3779B97F4A7C15ULL) >> 56);
}

inline std::string pattern(std::uint64_t offset, std::size_t n) {
    std::string out(n, '\0');
    for (std::size_t i = 0; i < n; ++i)
        out[i] = pattern_at(offset + i);
    return out;
}

/// Offset in `bytes` of the first byte that differs from the pattern at `offset`; npos if none.
inline std::size_t pattern_mismatch(std::string_view bytes, std::uint64_t offset) noexcept {
    for (std::size_t i = 0; i < bytes.size(); ++i)
        if (bytes[i] != pattern_at(offset + i))
            return i;
    return std::string_view::npos;
}

/// Both ends of one loopback connection and the listener that accepted it.
struct LoopbackPair {
    Listener listener;
    Connection client;
    Connection server;
};

/// Connects a client to a fresh listener on 127.0.0.1; call it from a task.
inline LoopbackPair connect_pair() {
    Listener listener = must(listen(Address::loopback(0)), "listen on 127.0.0.1:0");
    Connection client = must(connect(Address::loopback(listener.port()), generous), "connect");
    Connection server = must(listener.accept(generous), "accept");
    return {std::move(listener), std::move(client), std::move(server)};
}

/// Sleeps a millisecond of loop time at a time until `cond()` holds, at most
/// `max_polls` times. For progress only: the caller asserts the outcome.
template <class F>
bool eventually(F&& cond, int max_polls = 10'000) {
    for (int i = 0; i < max_polls; ++i) {
        if (cond())
            return true;
        if (!sleep_for(1ms).ok())
            return cond();
    }
    return cond();
}

/// A fresh folder under the system's temporary directory, removed with its contents.
class TempDir {
public:
    TempDir() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "reprise-io-test-XXXXXX").string();
        if (::mkdtemp(tmpl.data()) == nullptr)
            FAIL("mkdtemp failed for " << tmpl);
        path_ = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const std::string& path() const noexcept { return path_; }
    std::string operator/(std::string_view name) const { return path_ + "/" + std::string(name); }

private:
    std::string path_;
};

} // namespace reprise::test
