// A recording whose writes fail (device full, file size limit, a segment that cannot be created): the program goes on, the trace stops cleanly at a chunk boundary, and replay stops there.
#include "../support/reprise_test.hpp"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <sys/resource.h>
#include <vector>

using namespace reprise;
using namespace reprise::test;
using namespace std::chrono_literals;

namespace {

/// The program under test: a server task echoes `rounds` messages of `bytes` bytes
/// for a client task of the same process. After each round the client checks the
/// echo, reads the precise clock and prints "round I T" on stdout: replay prints the
/// same lines for the rounds whose clock read is in the trace, and no others. With
/// `abort_at_end` it aborts after the last round instead of returning. `started`
/// runs once the runtime exists (and a recording's header is on disk).
int echo_rounds(Options options, int rounds, std::size_t bytes, bool abort_at_end,
                const std::function<void()>& started = {}) {
    Runtime rt(std::move(options));
    if (started)
        started();
    return rt.run([&] {
        Listener listener = must(listen(Address::loopback(0)), "listen");
        auto server = spawn("server", [&] {
            Connection conn = must(listener.accept(generous), "accept");
            for (;;) {
                auto got = conn.read_some(64 * 1024, generous);
                if (!got.ok())
                    return 0;
                must(conn.write(*got, generous), "echo");
            }
        });
        Connection client = must(connect(listener.local_address(), generous), "connect");
        std::string message(bytes, 'x');
        for (int i = 0; i < rounds; ++i) {
            message[0] = static_cast<char>('a' + i % 26);
            message[bytes - 1] = static_cast<char>('A' + i % 26);
            must(client.write(message, generous), "write");
            const std::string echo = must(client.read_exact(bytes, generous), "read the echo");
            if (echo != message) {
                std::printf("round %d: wrong echo\n", i);
                return 1;
            }
            const auto t = precise_now();
            std::printf("round %d %lld\n", i, static_cast<long long>(t.time_since_epoch().count()));
            std::fflush(stdout);
        }
        client.close();
        must(server.join(), "the server");
        if (abort_at_end)
            std::abort();
        return 0;
    });
}

/// Limits the size of files this (child) process writes, as a disk that fills does:
/// a write past `bytes` fails with EFBIG (SIGXFSZ ignored, so it is an error, not a death).
void limit_file_size(rlim_t bytes) {
    rlimit limit{bytes, bytes};
    if (::setrlimit(RLIMIT_FSIZE, &limit) != 0 || std::signal(SIGXFSZ, SIG_IGN) == SIG_ERR) {
        std::perror("setrlimit");
        std::_Exit(97);
    }
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::size_t from = 0;
    while (from < text.size()) {
        std::size_t eol = text.find('\n', from);
        if (eol == std::string::npos)
            eol = text.size();
        out.push_back(text.substr(from, eol - from));
        from = eol + 1;
    }
    return out;
}

std::size_t count_of(const std::string& text, std::string_view what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1))
        ++n;
    return n;
}

/// N in the recorder's "the trace ends before record N", or -1 when the message is missing.
long long stopped_before(const std::string& err) {
    const std::string key = "the trace ends before record ";
    const auto at = err.find(key);
    return at == std::string::npos ? -1 : std::strtoll(err.c_str() + at + key.size(), nullptr, 10);
}

/// N in the replayer's "the trace ends at event N without an end record", or -1.
long long replay_ended_at(const std::string& err) {
    const std::string key = "the trace ends at event ";
    const auto at = err.find(key);
    return at == std::string::npos ? -1 : std::strtoll(err.c_str() + at + key.size(), nullptr, 10);
}

std::size_t precise_clock_reads(const TraceFacts& facts) {
    return static_cast<std::size_t>(std::count_if(facts.all.begin(), facts.all.end(), [](const trace::RecordCopy& r) {
        const auto* in = std::get_if<trace::Input>(&r.get());
        return in != nullptr && in->input == trace::InputKind::precise_clock;
    }));
}

/// What every cut trace must satisfy: the recorder said once, exactly, where the
/// trace stops; the file holds just the header and complete chunks up to there;
/// replay prints the same rounds as the recording did for every clock read in the
/// trace, then stops at that very event with the "trace ends" message (exit 2).
void check_cut_trace(const ChildResult& recorded, const std::string& path, const Options& replay_options,
                     int rounds, std::size_t bytes, bool aborts) {
    const long long n = stopped_before(recorded.err);
    REQUIRE(count_of(recorded.err, "RECORDING STOPPED") == 1);
    REQUIRE(n > 0);
    REQUIRE_THAT(recorded.err, Catch::Contains("in complete chunks"));

    const TraceFacts facts = read_trace(path, true);
    INFO("trace: " << facts.records << " records, open error '" << facts.open_error << "'"
                   << (facts.error ? ", read error: " + facts.error->message : std::string()));
    REQUIRE(facts.opened);
    REQUIRE_FALSE(facts.error.has_value());  // cut at a chunk boundary: nothing damaged
    REQUIRE_FALSE(facts.saw_end);
    REQUIRE(facts.records == static_cast<std::uint64_t>(n));  // the message is exact

    // The recording's rounds that were traced: one clock read each.
    const std::vector<std::string> recorded_rounds = lines_of(recorded.out);
    const std::size_t traced = precise_clock_reads(facts);
    REQUIRE(traced > 0);
    REQUIRE(traced < recorded_rounds.size());  // the recording went on past the cut

    ChildResult replayed = run_in_child([&] { return echo_rounds(replay_options, rounds, bytes, aborts); });
    INFO("replay: " << replayed.describe());
    REQUIRE(replayed.exited_with(2));
    REQUIRE(replay_ended_at(replayed.err) == n);
    REQUIRE_THAT(replayed.err, Catch::Contains("without an end record"));
    REQUIRE(count_of(replayed.err, "DIVERGENCE") == 0);
    const std::vector<std::string> replayed_rounds = lines_of(replayed.out);
    REQUIRE(replayed_rounds.size() == traced);
    REQUIRE(std::equal(replayed_rounds.begin(), replayed_rounds.end(), recorded_rounds.begin()));
}

} // namespace

// The chosen behaviour at start: the trace cannot even hold its header (a full disk, here a full
// device): the service starts anyway, unrecorded, and says so (a full disk never stops the service).
TEST_CASE("recording to a full device runs the program unrecorded") {
    Options options;
    options.record_path = "/dev/full";
    Runtime rt(options);
    REQUIRE(rt.run([] { return sleep_for(std::chrono::milliseconds(1)).ok() ? 0 : 1; }) == 0);
    REQUIRE(std::filesystem::exists("/dev/full"));
}

TEST_CASE("a disk that fills mid-run cuts the trace at its last complete chunk; the program goes on; replay stops there") {
    TempDir dir;
    const std::string path = dir / "trace";
    constexpr int rounds = 400;
    constexpr std::size_t bytes = 1500;
    // 400 rounds carry about 1.2 MB of echoed bytes; the file may hold 300000 bytes,
    // not a multiple of anything the recorder writes, so the failing write is partial.
    Options rec;
    rec.record_compress = false;  // the sizes below are of records as written, uncompressed
    rec.record_path = path;
    ChildResult recorded = run_in_child([&] {
        limit_file_size(300000);
        return echo_rounds(rec, rounds, bytes, false);
    });
    INFO("record: " << recorded.describe());
    // The program and its client saw nothing of the failure.
    REQUIRE(recorded.exited_with(0));
    REQUIRE(lines_of(recorded.out).size() == static_cast<std::size_t>(rounds));
    REQUIRE_THAT(recorded.err, Catch::Contains("RECORDING STOPPED: writing the trace " + path + " failed: File too large"));
    // Cut back: the file is no longer than the last complete chunk.
    REQUIRE(std::filesystem::file_size(path) < 300000);

    Options rep;
    rep.replay_path = path;
    check_cut_trace(recorded, path, rep, rounds, bytes, false);
}

// The file size limit is per file: with segments it is a segment file that fails.
// PATH.1 is a symbolic link to /dev/full, so the second segment's header cannot be
// written; the recorder removes the file it could not fill (here the link).
TEST_CASE("a segment whose header cannot be written ends the trace after the segments before it") {
    TempDir dir;
    const std::string path = dir / "trace";
    std::filesystem::create_symlink("/dev/full", path + ".1");
    constexpr int rounds = 300;
    constexpr std::size_t bytes = 8000;  // about 4.8 MB crosses loopback: more than two segments
    Options rec;
    rec.record_compress = false;  // the sizes below are of records as written, uncompressed
    rec.record_path = path;
    rec.record_segment_bytes = 1024 * 1024;
    ChildResult recorded = run_in_child([&] { return echo_rounds(rec, rounds, bytes, false); });
    INFO("record: " << recorded.describe());
    REQUIRE(recorded.exited_with(0));
    REQUIRE(lines_of(recorded.out).size() == static_cast<std::size_t>(rounds));
    REQUIRE_THAT(recorded.err, Catch::Contains("RECORDING STOPPED: cannot write the header of trace " + path +
                                               ".1: No space left on device"));
    REQUIRE_FALSE(std::filesystem::exists(std::filesystem::symlink_status(path + ".1")));
    REQUIRE(std::filesystem::exists("/dev/full"));
    REQUIRE_FALSE(std::filesystem::exists(path + ".2"));

    Options rep;
    rep.replay_path = path;
    check_cut_trace(recorded, path, rep, rounds, bytes, false);
}

// After a failure nothing may be appended: the crash hook must not write its unsealed
// records after the cut (they would follow a gap and read back as if contiguous).
// PATH.1 is a dangling link, so the second segment cannot be created (a trace is never
// created over an existing name, a link included: EEXIST) and the
// first one stays open: the place where a careless crash hook would append.
TEST_CASE("a program that crashes after its recording stopped leaves the trace as it was cut") {
    TempDir dir;
    const std::string path = dir / "trace";
    std::filesystem::create_symlink(dir / "no-such-directory/trace.1", path + ".1");
    constexpr int rounds = 300;
    constexpr std::size_t bytes = 8000;
    Options rec;
    rec.record_compress = false;  // the sizes below are of records as written, uncompressed
    rec.record_path = path;
    rec.record_segment_bytes = 1024 * 1024;
    ChildResult recorded = run_in_child([&] { return echo_rounds(rec, rounds, bytes, true); });
    INFO("record: " << recorded.describe());
    REQUIRE(recorded.died_by(SIGABRT));
    REQUIRE(lines_of(recorded.out).size() == static_cast<std::size_t>(rounds));
    REQUIRE_THAT(recorded.err, Catch::Contains("RECORDING STOPPED: trace " + path + ".1 exists"));

    Options rep;
    rep.replay_path = path;
    check_cut_trace(recorded, path, rep, rounds, bytes, true);
}

// A disk that is full before the first chunk: the header is on disk, no chunk is.
TEST_CASE("a disk that fills right after the header leaves a trace with no record, which replay says") {
    TempDir dir;
    const std::string path = dir / "trace";
    Options rec;
    rec.record_compress = false;  // the sizes below are of records as written, uncompressed
    rec.record_path = path;
    // The limit is set once the header is written: the file may not grow by one byte.
    ChildResult recorded = run_in_child(
        [&] { return echo_rounds(rec, 100, 1500, false, [&] { limit_file_size(std::filesystem::file_size(path)); }); });
    INFO("record: " << recorded.describe());
    REQUIRE(recorded.exited_with(0));
    REQUIRE(lines_of(recorded.out).size() == 100);
    REQUIRE(stopped_before(recorded.err) == 0);
    REQUIRE_THAT(recorded.err, Catch::Contains("it holds no record"));
    const TraceFacts facts = read_trace(path);
    REQUIRE(facts.opened);
    REQUIRE_FALSE(facts.error.has_value());
    REQUIRE(facts.records == 0);

    Options rep;
    rep.replay_path = path;
    ChildResult replayed = run_in_child([&] { return echo_rounds(rep, 100, 1500, false); });
    INFO("replay: " << replayed.describe());
    REQUIRE(replayed.exited_with(2));
    REQUIRE(replay_ended_at(replayed.err) == 0);
    REQUIRE(replayed.out.empty());
}
