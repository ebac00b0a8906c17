// Tests of the scheduler: spawn, join, FIFO order, yield, cancellation.
#include "runtime/reprise.hpp"

#include <catch2/catch.hpp>

using namespace reprise;
using namespace std::chrono_literals;

TEST_CASE("ready tasks run in spawn order") {
    Runtime rt;
    std::vector<int> order;
    rt.run([&] {
        std::vector<Task<void>> tasks;
        for (int i = 0; i < 5; ++i)
            tasks.push_back(spawn("t", [&order, i] { order.push_back(i); }));
        for (auto& t : tasks)
            t.join().value();
        return 0;
    });
    REQUIRE(order == std::vector<int>{0, 1, 2, 3, 4});
}
