// The runtime's handle table (runtime/internal/handle_table.hpp) against std::unordered_map: random adds, removals and lookups, growth, runs of colliding ids.
#include "../support/reprise_test.hpp"

#include <reprise/runtime/internal/handle_table.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <unordered_map>
#include <vector>

using reprise::detail::Handle;
using reprise::detail::HandleTable;

namespace {

// A distinct fake handle pointer per id (never dereferenced).
Handle* fake(std::uint64_t id) { return reinterpret_cast<Handle*>(static_cast<std::uintptr_t>(id) * 16); }

void check_same(const HandleTable& table, const std::unordered_map<std::uint64_t, Handle*>& model) {
    REQUIRE(table.size() == model.size());
    std::size_t seen = 0;
    table.for_each([&](std::uint64_t id, Handle* h) {
        ++seen;
        auto it = model.find(id);
        REQUIRE(it != model.end());
        REQUIRE(it->second == h);
    });
    REQUIRE(seen == model.size());
}

// `ops` random operations; ids drawn from `draw`.
template <class Draw>
void run_against_model(std::uint64_t seed, int ops, Draw&& draw) {
    std::mt19937_64 rng(seed);
    HandleTable table;
    std::unordered_map<std::uint64_t, Handle*> model;
    std::vector<std::uint64_t> alive;
    for (int i = 0; i < ops; ++i) {
        const auto op = rng() % 10;
        if (op < 5) {  // add a new id
            const std::uint64_t id = draw(rng);
            if (id == 0 || model.count(id) != 0)
                continue;
            table.insert(id, fake(id));
            model.emplace(id, fake(id));
            alive.push_back(id);
        } else if (op < 8 && !alive.empty()) {  // remove one that is there
            const std::size_t k = rng() % alive.size();
            const std::uint64_t id = alive[k];
            alive[k] = alive.back();
            alive.pop_back();
            REQUIRE(table.erase(id) == fake(id));
            model.erase(id);
            REQUIRE(table.find(id) == nullptr);
        } else {  // look up: one there, one perhaps not
            if (!alive.empty()) {
                const std::uint64_t id = alive[rng() % alive.size()];
                REQUIRE(table.find(id) == fake(id));
            }
            const std::uint64_t other = draw(rng);
            const auto it = model.find(other);
            REQUIRE(table.find(other) == (it == model.end() ? nullptr : it->second));
            if (it == model.end())
                REQUIRE(table.erase(other) == nullptr);
        }
        if (i % 997 == 0)
            check_same(table, model);
    }
    check_same(table, model);
    // Every id still finds its handle, then the table empties.
    for (std::uint64_t id : alive)
        REQUIRE(table.find(id) == fake(id));
    for (std::uint64_t id : alive)
        REQUIRE(table.erase(id) == fake(id));
    REQUIRE(table.size() == 0);
    for (std::uint64_t id : alive)
        REQUIRE(table.find(id) == nullptr);
}

} // namespace

TEST_CASE("handle table: sequential ids, as a runtime draws them, made and dropped at random") {
    const std::uint64_t seed = reprise::test::test_seed("handle table sequential");
    std::uint64_t next = 1;
    run_against_model(seed, 200'000, [&](std::mt19937_64& rng) {
        // Mostly the next id; sometimes an older or a far one (lookups of ids gone or never made).
        const auto r = rng() % 8;
        return r < 6 ? next++ : r == 6 ? 1 + rng() % next : rng();
    });
}

TEST_CASE("handle table: ids that all share one home slot, at every table size") {
    // The table's home slot is the top bits of id x C (Fibonacci hashing). Ids id = (B + j) x C^-1
    // (mod 2^64) give id x C = B + j: with B's low 40 bits clear and j < 512, every one of them has
    // the same top 24 bits, so they share a home slot in any table of up to 2^24 slots.
    constexpr std::uint64_t c = 0x9E3779B97F4A7C15ULL;
    std::uint64_t inverse = c;  // Newton's iteration for the inverse of an odd number mod 2^64
    for (int i = 0; i < 6; ++i)
        inverse *= 2 - c * inverse;
    REQUIRE(c * inverse == 1);
    const std::uint64_t base = std::uint64_t{0x5A5A5A} << 40;
    for (std::uint64_t j = 0; j < 512; ++j)
        REQUIRE((((base + j) * inverse) * c) >> 40 == base >> 40);
    const std::uint64_t seed = reprise::test::test_seed("handle table collisions");
    run_against_model(seed, 100'000, [&](std::mt19937_64& rng) { return (base + rng() % 512) * inverse; });
}

TEST_CASE("handle table: grows from empty past 100,000 handles, and finds every one") {
    HandleTable table;
    for (std::uint64_t id = 1; id <= 100'000; ++id)
        table.insert(id, fake(id));
    REQUIRE(table.size() == 100'000);
    for (std::uint64_t id = 1; id <= 100'000; ++id)
        REQUIRE(table.find(id) == fake(id));
    REQUIRE(table.find(0) == nullptr);
    REQUIRE(table.find(100'001) == nullptr);
    REQUIRE(table.erase(0) == nullptr);
    for (std::uint64_t id = 2; id <= 100'000; id += 2)
        REQUIRE(table.erase(id) == fake(id));
    for (std::uint64_t id = 1; id <= 100'000; ++id)
        REQUIRE(table.find(id) == (id % 2 == 1 ? fake(id) : nullptr));
}
