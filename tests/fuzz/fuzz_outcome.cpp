// Fuzz target: bytes as an outcome file beside a trace (PATH.outcome), through trace::parse_outcome.
//
// `reprise info`, `verify` and retention read these files from disk, where anything may be.
// Checks: a refusal has a reason; an accepted file describes itself in a few printable words.
#include <reprise/record/trace_state.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    std::string why;
    auto o = reprise::trace::parse_outcome(text, why);
    if (!o && why.empty()) {
        std::fprintf(stderr, "fuzz_outcome: a refusal without a reason\n");
        std::abort();
    }
    if (o) {
        const std::string said = reprise::trace::describe_outcome(*o);
        bool printable = !said.empty();
        for (char c : said)
            printable = printable && c >= 0x20 && c < 0x7f;
        if (!printable) {
            std::fprintf(stderr, "fuzz_outcome: an outcome described with no or unprintable text\n");
            std::abort();
        }
    }
    return 0;
}
