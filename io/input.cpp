// env() and app-defined inputs, through the runtime's journal.
#include "reprise/io/input.hpp"

#include "reprise/runtime/internal/core.hpp"

#include <cstdlib>
#include <fmt/core.h>

namespace reprise {

namespace detail {

std::string app_input(std::string_view name, const std::function<std::string()>& produce) {
    return current_runtime("input()").sync_input(InputKind::app, name, produce);
}

void input_does_not_decode(std::string_view name) {
    Runtime::Impl& rt = current_runtime("input()");
    if (rt.journal)
        rt.journal->undecodable_input(name);
    assert_fail("input decodes", __FILE__, __LINE__, "an input's own encoding does not decode");
}

} // namespace detail

std::optional<std::string> env(const std::string& name) {
    std::string v = detail::current_runtime("env()").sync_input(InputKind::env, name, [&] {
        const char* value = std::getenv(name.c_str());
        return encode_value(value ? std::optional<std::string>(value) : std::nullopt);
    });
    auto decoded = decode_value<std::optional<std::string>>(v);
    if (!decoded)
        detail::input_does_not_decode(name);
    return *decoded;
}

} // namespace reprise
