// Fuzz target: bytes as a simulation's run order (sim.order), through trace::parse_run_order.
//
// A joint replay reads this file from a folder of traces, where anything may be. Checks: a refusal
// has a reason; an accepted order is consistent (every run names a trace, has ticks, the runs of a
// trace add up to its count, no two runs in a row name one trace), and encoding it again reads
// back as the same order.
#include <reprise/record/internal/run_order.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "fuzz_run_order: %s\n", what);
    std::abort();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace reprise::trace;
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    RunOrder order;
    std::string why;
    if (!parse_run_order(bytes, "input", order, why)) {
        if (why.empty())
            fail("a refusal without a reason");
        if (!order.traces.empty() || !order.runs.empty() || order.run_count != 0)
            fail("a refused order left something behind");
        return 0;
    }
    const auto runs = all_runs(order);
    if (runs.size() != order.run_count)
        fail("an accepted order does not have the runs it says");
    std::vector<std::uint64_t> sums(order.traces.size(), 0);
    for (std::size_t i = 0; i < runs.size(); ++i) {
        const auto [index, ticks] = runs[i];
        if (index >= order.traces.size() || ticks == 0)
            fail("an accepted run names no trace or no tick");
        if (i > 0 && runs[i - 1].first == index)
            fail("two runs in a row name one trace");
        sums[index] += ticks;
    }
    for (std::size_t i = 0; i < sums.size(); ++i)
        if (sums[i] != order.traces[i].ticks)
            fail("the runs of a trace do not add up to its count");
    RunOrderLog log;
    for (const RunOrderTrace& t : order.traces)
        log.add_trace(t.file, t.node, t.seed);
    for (const auto& [index, ticks] : runs)
        log.ticks(index, ticks);
    RunOrder again;
    if (!parse_run_order(log.encode(), "encoded", again, why))
        fail("an accepted order, encoded again, is refused");
    if (all_runs(again) != runs || again.traces.size() != order.traces.size())
        fail("an accepted order, encoded again, reads back otherwise");
    for (std::size_t i = 0; i < order.traces.size(); ++i)
        if (again.traces[i].file != order.traces[i].file || again.traces[i].node != order.traces[i].node ||
            again.traces[i].seed != order.traces[i].seed || again.traces[i].ticks != order.traces[i].ticks)
            fail("an accepted order's traces, encoded again, read back otherwise");
    return 0;
}
