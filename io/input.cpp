// env() and app-defined inputs, through the runtime's journal.
#include "reprise/io/input.hpp"

#include "reprise/runtime/internal/core.hpp"
#include "reprise/runtime/internal/os_random.hpp"

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

std::string Backend::secure_random_bytes(std::size_t n) {
    std::string out(n, '\0');
    os_random_bytes(out.data(), n);
    return out;
}

std::optional<std::string> Backend::environment(const std::string& name) {
    const char* value = std::getenv(name.c_str());
    return value ? std::optional<std::string>(value) : std::nullopt;
}

} // namespace detail

std::optional<std::string> env(const std::string& name) {
    Runtime::Impl& rt = detail::current_runtime("env()");
    std::string v = rt.sync_input(InputKind::env, name, [&] { return encode_value(rt.backend->environment(name)); });
    auto decoded = decode_value<std::optional<std::string>>(v);
    if (!decoded)
        detail::input_does_not_decode(name);
    return *decoded;
}

} // namespace reprise
