// The one C++ test-support layer of reprise's suites: seeds that are printed and accepted, outcomes,
// failure helpers, byte patterns, loopback pairs, temporary folders; children run in forked processes;
// record -> replay -> compare with a structured child report; and run_main_task, which runs a scenario live
// and then recorded, replayed and compared. Every suite includes this file (kv adds its own client on top).
#pragma once

#include <reprise/record/chunk.hpp>
#include <reprise/record/trace.hpp>
#include <reprise/runtime/reprise.hpp>
#include <reprise/sim/world.hpp>

#include <catch2/catch.hpp>
#include <fmt/core.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fcntl.h>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <poll.h>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <sys/wait.h>
#include <system_error>
#include <unistd.h>
#include <utility>
#include <vector>

namespace Catch {
template <>
struct StringMaker<reprise::Errc> {
    static std::string convert(reprise::Errc e) {
        return static_cast<int>(e) == 0 ? std::string("ok") : std::string(reprise::errc_name(e));
    }
};
} // namespace Catch

namespace reprise::test {

// ---- Basics: seeds, outcomes, failure helpers, byte patterns, loopback pairs, temporary folders ----

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

// ---- Children: part of a test run in a forked process ----

/// How a child ended: its exit code or the signal that killed it, and its output.
struct ChildResult {
    bool exited = false;
    int exit_code = -1;
    bool signaled = false;
    int signal = 0;
    bool hung = false;   ///< killed by the watchdog (a safety net, not a measurement)
    std::string out;
    std::string err;

    bool died_by(int signo) const noexcept { return signaled && signal == signo; }
    bool exited_with(int code) const noexcept { return exited && exit_code == code; }
    /// For failure messages: "exit 2" or "signal 11 (Segmentation fault)", then stderr.
    std::string describe() const {
        std::string how = hung ? "hung (killed by the watchdog)"
                          : exited ? "exit " + std::to_string(exit_code)
                                   : "signal " + std::to_string(signal) + " (" + strsignal(signal) + ")";
        return how + "\n--- stdout ---\n" + out + "\n--- stderr ---\n" + err;
    }
};

/// Forks; the child runs `body` (an `int()` callable) with stdout and stderr sent
/// to pipes and leaves with `_exit(body())`, so no destructor or atexit handler of
/// the test process runs twice. The parent collects both streams and the status.
/// `watchdog` only stops a child that hangs; no result depends on it.
template <class Body>
ChildResult run_in_child(Body&& body, std::chrono::seconds watchdog = std::chrono::seconds(120)) {
    int out_pipe[2];
    int err_pipe[2];
    if (::pipe(out_pipe) != 0 || ::pipe(err_pipe) != 0) {
        std::perror("pipe");
        std::abort();
    }
    std::fflush(stdout);
    std::fflush(stderr);
    pid_t pid = ::fork();
    if (pid < 0) {
        std::perror("fork");
        std::abort();
    }
    if (pid == 0) {
        ::dup2(out_pipe[1], STDOUT_FILENO);
        ::dup2(err_pipe[1], STDERR_FILENO);
        ::close(out_pipe[0]);
        ::close(out_pipe[1]);
        ::close(err_pipe[0]);
        ::close(err_pipe[1]);
        int code = 99;
        try {
            code = body();
        } catch (const std::exception& e) {
            std::fprintf(stderr, "child: exception: %s\n", e.what());
        } catch (...) {
            std::fprintf(stderr, "child: unknown exception\n");
        }
        std::fflush(stdout);
        std::fflush(stderr);
        ::_exit(code);
    }
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);

    ChildResult result;
    pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
    std::string* sinks[2] = {&result.out, &result.err};
    int open_streams = 2;
    const auto give_up = std::chrono::steady_clock::now() + watchdog;
    while (open_streams > 0) {
        if (std::chrono::steady_clock::now() > give_up) {
            ::kill(pid, SIGKILL);
            result.hung = true;
            break;
        }
        int n = ::poll(fds, 2, 1000);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            continue;
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || fds[i].revents == 0)
                continue;
            char buf[4096];
            ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
            if (got > 0) {
                sinks[i]->append(buf, static_cast<std::size_t>(got));
            } else if (got == 0 || errno != EINTR) {
                ::close(fds[i].fd);
                fds[i].fd = -1;
                --open_streams;
            }
        }
    }
    for (auto& fd : fds)
        if (fd.fd >= 0)
            ::close(fd.fd);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!result.hung) {
        result.exited = WIFEXITED(status);
        result.exit_code = result.exited ? WEXITSTATUS(status) : -1;
        result.signaled = WIFSIGNALED(status);
        result.signal = result.signaled ? WTERMSIG(status) : 0;
    }
    return result;
}

// ---- Record -> replay -> compare ----

/// A program under test. It runs as the task "main", appends what it observes to
/// `log` and returns its exit code. Record and replay must leave the same log:
/// everything a scenario may observe reaches it through the runtime.
using Scenario = std::function<int(std::string& log)>;


/// "ok" or the error's name: how scenarios log an operation's outcome.
template <class T>
std::string outcome_name(const Result<T>& r) {
    return r.ok() ? std::string("ok") : std::string(errc_name(r.code()));
}

// --- plain POSIX files of the harness itself (never through a runtime) ------------------

inline std::string slurp(const std::string& path) {
    std::string out;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return out;
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        out.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return out;
}

/// Creates or replaces `path` with `bytes`; false when that fails.
inline bool spit(const std::string& path, std::string_view bytes) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return false;
    while (!bytes.empty()) {
        ssize_t n = ::write(fd, bytes.data(), bytes.size());
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            ::close(fd);
            return false;
        }
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return ::close(fd) == 0;
}

inline bool file_is_there(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

// --- traces, read back with trace::Reader -------------------------------------------------

/// What a trace file holds.
struct TraceFacts {
    bool opened = false;
    std::string open_error;
    std::uint64_t records = 0;
    bool saw_end = false;
    std::optional<trace::ReadError> error;
    std::vector<trace::RecordCopy> all;  ///< every record, when asked for
    std::uint64_t chunks = 0;
    std::uint64_t chunks_encrypted = 0;
};

inline TraceFacts read_trace(const std::string& path, bool keep_records = false, const trace::TraceKey* key = nullptr) {
    TraceFacts facts;
    auto reader = trace::Reader::open(path, &facts.open_error, key);
    if (!reader.ok())
        return facts;
    facts.opened = true;
    trace::Record r;
    while (reader->next(r))
        if (keep_records)
            facts.all.emplace_back(r);
    facts.records = reader->records_read();
    facts.saw_end = reader->saw_end();
    facts.error = reader->error();
    facts.chunks = reader->chunks_read();
    facts.chunks_encrypted = reader->chunks_encrypted();
    return facts;
}

/// The 0-based index (the replayer's event number) of the first record that
/// satisfies `pred`, or nothing.
template <class Pred>
std::optional<std::uint64_t> index_of_first(const std::string& path, Pred pred) {
    TraceFacts facts = read_trace(path, true);
    for (std::size_t i = 0; i < facts.all.size(); ++i)
        if (pred(facts.all[i].get()))
            return i;
    return std::nullopt;
}

// --- record (in-process: a recording never exits on its own) --------------------------------

struct Recording {
    std::string trace_path;
    int exit_code = -1;
    std::string log;
    RuntimeStats stats;
    std::uint64_t seed = 0;
    TraceFacts trace;
};

/// Runs `scenario` live, recording it to `trace_path`, and reads the trace back.
inline Recording record(const std::string& trace_path, const Scenario& scenario, Options options = {}) {
    options.record_path = trace_path;
    Recording rec;
    rec.trace_path = trace_path;
    {
        Runtime rt(options);
        rec.exit_code = rt.run([&] { return scenario(rec.log); });
        rec.stats = rt.stats();
        rec.seed = rt.seed();
    }
    rec.trace = read_trace(trace_path);
    return rec;
}

// --- replay (in a child: a replay that diverges or meets damage ends the process) -----------

struct Replay {
    ChildResult child;
    bool finished = false;  ///< run() returned and the child reported back
    int exit_code = -1;     ///< what run() returned
    std::string log;
    RuntimeStats stats;
    std::int64_t run_wall_ns = -1;  ///< real time spent in run(), measured by the child
    bool replaying = false;         ///< Runtime::replaying() in the child
    std::uint64_t seed = 0;         ///< Runtime::seed() in the child (from the trace header)
    // The replayer's summary line ("reprise: replay done: N events, virtual time ...").
    std::optional<std::uint64_t> summary_events;
    double summary_virtual_s = -1;
    double summary_wall_s = -1;
};

/// Reads the replay child's report ("key=value" lines, a blank line, the log) into `out`;
/// leaves `out.finished` false when a fact is missing or the log is cut short.
inline void read_child_report(const std::string& report, Replay& out) {
    const auto blank = report.find("\n\n");
    if (blank == std::string::npos)
        return;
    std::map<std::string, unsigned long long> facts;
    std::size_t at = 0;
    while (at < blank) {
        const auto eol = report.find('\n', at);
        const std::string line = report.substr(at, eol - at);
        const auto eq = line.find('=');
        if (eq != std::string::npos)
            facts[line.substr(0, eq)] = std::strtoull(line.c_str() + eq + 1, nullptr, 10);
        at = eol + 1;
    }
    for (const char* key : {"exit_code", "ticks", "wakeups", "switches", "fibers_spawned", "run_wall_ns", "replaying",
                            "seed", "clock_waits", "log_bytes"})
        if (!facts.count(key))
            return;
    out.log = report.substr(blank + 2);
    if (out.log.size() != facts["log_bytes"])
        return;
    out.finished = true;
    out.exit_code = static_cast<int>(facts["exit_code"]);
    out.stats.ticks = facts["ticks"];
    out.stats.wakeups = facts["wakeups"];
    out.stats.switches = facts["switches"];
    out.stats.fibers_spawned = facts["fibers_spawned"];
    out.run_wall_ns = static_cast<std::int64_t>(facts["run_wall_ns"]);
    out.replaying = facts["replaying"] != 0;
    out.seed = facts["seed"];
    out.stats.clock_waits = facts["clock_waits"];
}

/// Replays `trace_path` in a child running `scenario`. `prepare_child` runs in
/// the child first (to change its environment, say). The child writes its log and
/// counters to a file next to the trace with plain POSIX calls.
inline Replay replay(const std::string& trace_path, const Scenario& scenario, Options options = {},
                     const std::function<void()>& prepare_child = {}) {
    options.replay_path = trace_path;
    const std::string report_path = trace_path + ".replay-report";
    ::unlink(report_path.c_str());
    Replay out;
    out.child = run_in_child(
        [&] {
            if (prepare_child)
                prepare_child();
            std::string log;
            Runtime rt(options);
            const auto start = std::chrono::steady_clock::now();
            const int code = rt.run([&] { return scenario(log); });
            const auto wall = std::chrono::steady_clock::now() - start;
            const RuntimeStats s = rt.stats();
            // The child's report: one "key=value" line per fact, then the log after a blank line.
            std::string report = fmt::format(
                "exit_code={}\nticks={}\nwakeups={}\nswitches={}\nfibers_spawned={}\nrun_wall_ns={}\nreplaying={}\n"
                "seed={}\nclock_waits={}\nlog_bytes={}\n\n",
                code, s.ticks, s.wakeups, s.switches, s.fibers_spawned,
                std::chrono::duration_cast<std::chrono::nanoseconds>(wall).count(), rt.replaying() ? 1 : 0, rt.seed(),
                s.clock_waits, log.size());
            report += log;
            return spit(report_path, report) ? 0 : 98;
        },
        std::chrono::seconds(60));
    if (out.child.exited_with(0))
        read_child_report(slurp(report_path), out);
    const std::string done = "reprise: replay done: ";
    if (auto at = out.child.err.find(done); at != std::string::npos) {
        unsigned long long events = 0;
        double virt = 0, wall = 0;
        if (std::sscanf(out.child.err.c_str() + at + done.size(), "%llu events, virtual time %lf s, wall time %lf s",
                        &events, &virt, &wall) == 3) {
            out.summary_events = events;
            out.summary_virtual_s = virt;
            out.summary_wall_s = wall;
        }
    }
    return out;
}

/// Where two logs first differ, with some context (Catch would print both whole).
inline std::string first_difference(const std::string& recorded, const std::string& replayed) {
    std::size_t i = 0;
    while (i < recorded.size() && i < replayed.size() && recorded[i] == replayed[i])
        ++i;
    if (i == recorded.size() && i == replayed.size())
        return "the logs are equal";
    const std::size_t from = i > 60 ? i - 60 : 0;
    return fmt::format("the logs differ at byte {} (recorded {} bytes, replayed {}):\n  recorded: ...{}\n  replayed: ...{}",
                       i, recorded.size(), replayed.size(), recorded.substr(from, 120), replayed.substr(from, 120));
}

/// Both halves of a round trip.
struct RoundTrip {
    Recording recorded;
    Replay replayed;
};

/// Records `scenario`, replays it in a child, and checks that the replay observed
/// exactly what the recording did and ended at the same final event: the same log,
/// the same exit code, "replay done" after as many events as the trace has records,
/// and the same counts of ticks, wake-ups and tasks.
inline RoundTrip record_and_replay(const std::string& trace_path, const Scenario& scenario, Options options = {},
                                   const std::function<void()>& prepare_child = {}) {
    RoundTrip trip;
    trip.recorded = record(trace_path, scenario, options);
    const Recording& rec = trip.recorded;
    INFO("trace " << trace_path << ": " << rec.trace.records << " records");
    REQUIRE(rec.trace.opened);
    REQUIRE_FALSE(rec.trace.error.has_value());
    REQUIRE(rec.trace.saw_end);

    // Replayed with the options it was recorded with (stack size, stop on signals): those
    // are the program's, not inputs, and the trace does not hold them. Seed, node and
    // arguments come from the trace.
    Options replay_options = options;
    replay_options.record_path.clear();
    replay_options.seed.reset();
    trip.replayed = replay(trace_path, scenario, replay_options, prepare_child);
    const Replay& rep = trip.replayed;
    INFO(rep.child.describe());
    REQUIRE(rep.child.exited_with(0));
    REQUIRE(rep.finished);
    REQUIRE(rep.replaying);
    REQUIRE(rep.seed == rec.seed);
    INFO(first_difference(rec.log, rep.log));
    REQUIRE(rep.log == rec.log);
    REQUIRE(rep.exit_code == rec.exit_code);
    REQUIRE(rep.summary_events.has_value());
    REQUIRE(*rep.summary_events == rec.trace.records);
    REQUIRE(rep.stats.ticks == rec.stats.ticks);
    REQUIRE(rep.stats.wakeups == rec.stats.wakeups);
    REQUIRE(rep.stats.fibers_spawned == rec.stats.fibers_spawned);
    REQUIRE(rep.stats.switches == rec.stats.switches);
    // Time-warped replay never waits on the real clock (asserted, not timed).
    REQUIRE(rep.stats.clock_waits == 0);
    return trip;
}

// --- divergence reports --------------------------------------------------------------------------

/// The parts of "reprise: DIVERGENCE at event N (node 'X', virtual time T s)" and the lines below it.
struct DivergenceReport {
    bool present = false;
    std::uint64_t event = 0;
    std::string node;
    std::string trace_says;
    std::string program_did;
    std::string task;
};

inline DivergenceReport parse_divergence(const std::string& err) {
    DivergenceReport d;
    const std::string head = "reprise: DIVERGENCE at event ";
    const auto at = err.find(head);
    if (at == std::string::npos)
        return d;
    const char* p = err.c_str() + at + head.size();
    char* end = nullptr;
    d.event = std::strtoull(p, &end, 10);
    if (end == p)
        return d;
    auto line_after = [&](const std::string& label) -> std::string {
        const auto l = err.find(label, at);
        if (l == std::string::npos)
            return {};
        const auto from = l + label.size();
        const auto to = err.find('\n', from);
        std::string s = err.substr(from, to == std::string::npos ? std::string::npos : to - from);
        s.erase(0, s.find_first_not_of(' '));
        return s;
    };
    if (auto n = err.find("(node '", at); n != std::string::npos) {
        const auto from = n + 7;
        d.node = err.substr(from, err.find('\'', from) - from);
    }
    d.trace_says = line_after("\n  trace says:");
    d.program_did = line_after("\n  program did:");
    d.task = line_after("\n  task:");
    d.present = !d.trace_says.empty() && !d.program_did.empty();
    return d;
}

// ---- Scenarios: live, then recorded, replayed and compared ----

/// Runs `body` as the main task of a fresh runtime and checks it returned 0: live, and
/// then again recorded, replayed in a child and compared (rr's compare_test): the body's
/// own checks hold in the replay too, which ends at the recorded end with the same
/// counts of ticks, wake-ups, switches and tasks, without ever waiting on the real clock.
/// The body runs three times (live, recording, replay): it must not count its runs in
/// variables outside it. A scenario that cannot be replayed runs with run_live_only.
template <class Body>
void run_main_task(Body&& body, reprise::Options options = {}) {
    {
        reprise::Runtime rt(options);
        REQUIRE(rt.run([&] {
            body();
            return 0;
        }) == 0);
    }
    if (!options.record_path.empty() || !options.replay_path.empty())
        return;  // the scenario chose its mode itself
    TempDir dir;
    const Scenario scenario = [&](std::string&) {
        body();
        return 0;
    };
    INFO("the same scenario, recorded and replayed");
    record_and_replay(dir / "trace", scenario, options);
}

/// Runs `body` live only; `why` says why it cannot be replayed (kept in the test file,
/// where a reader of the suite sees each exception and its reason).
template <class Body>
void run_live_only(const char* why, Body&& body, reprise::Options options = {}) {
    INFO("live only: " << why);
    reprise::Runtime rt(std::move(options));
    REQUIRE(rt.run([&] {
        body();
        return 0;
    }) == 0);
}

/// Runs `body` as the main task of one simulated node, on virtual time (sim::World): no real
/// clock is read, so a test of timing semantics can assert exact times ("woke at t0 + 20 ms",
/// not "at least"), and runs in no wall time. The node records its trace, which is then replayed
/// in a child and compared as run_main_task does (logs, exit code, counts, clock_waits == 0).
/// The body runs twice (simulated, replayed): it must not count its runs in variables outside it.
template <class Body>
void run_on_virtual_time(Body&& body, std::uint64_t seed = 1) {
    TempDir dir;
    sim::WorldOptions o;
    o.seed = seed;
    o.trace_folder = dir.path();
    std::string recorded_log;
    int recorded_exit = -1;
    RuntimeStats recorded_stats;
    {
        sim::World world(o);
        const ProgramEntry entry{.name = "scenario", .main = [&](MainContext& ctx) {
            body();
            recorded_stats = ctx.runtime.stats();
            return 0;
        }};
        const sim::NodeId n = world.add_node({.name = "node", .program = entry});
        REQUIRE(world.run_to_completion(std::chrono::hours(24)));
        REQUIRE(world.state(n) == sim::NodeState::exited);
        recorded_exit = *world.exit_code(n);
        REQUIRE(recorded_exit == 0);
    }
    INFO("the same scenario's simulated trace, replayed");
    Options replay_options;
    replay_options.program_name = "scenario";
    const Replay rep = replay(dir / "node.1.trace", [&](std::string&) {
        body();
        return 0;
    }, replay_options);
    INFO(rep.child.describe());
    REQUIRE(rep.child.exited_with(0));
    REQUIRE(rep.finished);
    REQUIRE(rep.exit_code == recorded_exit);
    REQUIRE(rep.stats.clock_waits == 0);
    // The replay's counts include the end of the run (after the body): at least the body's.
    REQUIRE(rep.stats.ticks >= recorded_stats.ticks);
    REQUIRE(rep.stats.fibers_spawned >= recorded_stats.fibers_spawned);
}

/// Loop iterations of the running runtime so far.
inline std::uint64_t ticks_now() { return reprise::Runtime::current()->stats().ticks; }

} // namespace reprise::test
