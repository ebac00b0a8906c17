// A simulation's run order file (sim.order): what the world logs reads back run for run, and every damaged or odd file is refused with its reason.
#include "../support/reprise_test.hpp"

#include <reprise/record/internal/run_order.hpp>

#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/stat.h>

using namespace reprise;
using namespace reprise::trace;
using reprise::test::TempDir;

namespace {

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

void spit(const std::string& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << bytes;
}

// Reads `bytes` as a run order: "" when it is read, else the error.
std::string refusal(const TempDir& dir, const std::string& bytes) {
    spit(dir / "sim.order", bytes);
    RunOrder order;
    std::string error;
    if (read_run_order(dir / "sim.order", order, error)) {
        CHECK(error.empty());
        return "";
    }
    CHECK(order.traces.empty());  // nothing half-read is left behind
    return error;
}

} // namespace

TEST_CASE("a run order reads back as logged: runs of one trace merged, counts up to 2^64-1") {
    TempDir dir;
    RunOrderLog log;
    CHECK(log.empty());
    const auto a = log.add_trace("n1.1.trace", "n1", 7);
    const auto b = log.add_trace("n2.1.trace", "n2", UINT64_MAX);
    log.ticks(a, 1);
    log.ticks(b, 1);
    log.ticks(b, 3);  // the same trace again: one run of 4
    log.ticks(a, 0);  // nothing: no run
    log.ticks(a, 200);
    log.ticks(b, 1);
    std::string error;
    REQUIRE(log.write(dir.path(), error));
    struct stat st {};
    REQUIRE(::stat((dir / "sim.order").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);

    RunOrder order;
    REQUIRE(read_run_order(dir / "sim.order", order, error));
    REQUIRE(order.traces.size() == 2);
    CHECK(order.traces[0].file == "n1.1.trace");
    CHECK(order.traces[0].node == "n1");
    CHECK(order.traces[0].seed == 7);
    CHECK(order.traces[0].ticks == 201);
    CHECK(order.traces[1].seed == UINT64_MAX);
    CHECK(order.traces[1].ticks == 5);
    const std::vector<std::pair<std::uint32_t, std::uint64_t>> runs{{0, 1}, {1, 4}, {0, 200}, {1, 1}};
    CHECK(all_runs(order) == runs);
    CHECK(order.run_count == 4);
    CHECK(slurp(dir / "sim.order").rfind("reprise-sim-order 1\ntraces 2\nn1.1.trace n1 7 201\n", 0) == 0);
}

TEST_CASE("a run order with a name it cannot hold is not written, and says why") {
    TempDir dir;
    RunOrderLog log;
    log.ticks(log.add_trace("node one.1.trace", "node one", 1), 1);
    std::string error;
    CHECK_FALSE(log.write(dir.path(), error));
    CHECK_THAT(error, Catch::Contains("holds a space"));
    CHECK_FALSE(std::ifstream(dir / "sim.order").good());
}

TEST_CASE("a damaged run order is refused with its reason") {
    TempDir dir;
    RunOrderLog log;
    const auto a = log.add_trace("n1.1.trace", "n1", 7);
    const auto b = log.add_trace("n2.1.trace", "n2", 8);
    for (int i = 0; i < 100; ++i) {
        log.ticks(a, 1 + i % 3);
        log.ticks(b, 300);  // two-byte varints
    }
    std::string error;
    REQUIRE(log.write(dir.path(), error));
    const std::string good = slurp(dir / "sim.order");
    REQUIRE(refusal(dir, good).empty());

    CHECK_THAT(refusal(dir, ""), Catch::Contains("its first line is not"));
    CHECK_THAT(refusal(dir, "reprise-sim-order 2\n" + good.substr(good.find('\n') + 1)), Catch::Contains("its first line is not"));
    CHECK_THAT(refusal(dir, "reprise-sim-order 1\ntraces 99999999\n"), Catch::Contains("no 'traces N' line"));
    CHECK_THAT(refusal(dir, "reprise-sim-order 1\ntraces 1\nn1.1.trace n1 7\nruns 0\n"),
               Catch::Contains("is not 'FILE NODE SEED TICKS'"));
    CHECK_THAT(refusal(dir, "reprise-sim-order 1\ntraces 1\n../n1.trace n1 7 0\nruns 0\n"),
               Catch::Contains("is not 'FILE NODE SEED TICKS'"));
    // Every cut short of the whole file is refused.
    for (std::size_t cut = 0; cut < good.size(); ++cut)
        CHECK_FALSE(refusal(dir, good.substr(0, cut)).empty());
    CHECK_THAT(refusal(dir, good + "x"), Catch::Contains("byte(s) follow its last run"));
    // A run naming a trace that is not there, a run of no ticks, counts that do not add up.
    const std::string head = "reprise-sim-order 1\ntraces 1\nn1.1.trace n1 7 2\n";
    CHECK_THAT(refusal(dir, head + "runs 1\n" + std::string("\x01\x02", 2)), Catch::Contains("names trace 1 of 1"));
    CHECK_THAT(refusal(dir, head + "runs 2\n" + std::string("\x00\x02\x00\x00", 4)), Catch::Contains("and 0 ticks"));
    CHECK_THAT(refusal(dir, head + "runs 1\n" + std::string("\x00\x03", 2)),
               Catch::Contains("its runs give n1.1.trace 3 ticks, its trace line 2"));
    CHECK_THAT(refusal(dir, head + "runs 1000\n" + std::string("\x00\x02", 2)), Catch::Contains("fewer bytes than N runs"));
    // A varint past 64 bits.
    CHECK_THAT(refusal(dir, head + "runs 1\n" + std::string("\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 11)),
               Catch::Contains("is cut or damaged"));
    CHECK_THAT(refusal(dir, head + "runs 1\n" + std::string("\x00\x02", 2)), Catch::Equals(""));
}
