// Synchronous inputs the runtime does not know by itself: environment variables and app-defined inputs.
#pragma once

#include "reprise/runtime/codec.hpp"

#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace reprise {

namespace detail {
std::string app_input(std::string_view name, const std::function<std::string()>& produce);
[[noreturn]] void input_does_not_decode(std::string_view name);
} // namespace detail

/// An environment variable, read once as an input (recorded; replayed from the trace).
std::optional<std::string> env(const std::string& name);

/// Any nondeterministic value the runtime does not know about (a hardware id, a
/// value from a library that reads the clock itself): `produce()` runs when live
/// or recording, and its result is recorded under `name`; replay returns the
/// recorded value without calling it. T needs a reprise::Codec.
template <class T, class F>
T input(std::string_view name, F&& produce) {
    std::string bytes = detail::app_input(name, [&] { return encode_value<T>(produce()); });
    auto v = decode_value<T>(bytes);
    if (!v)
        detail::input_does_not_decode(name);
    return std::move(*v);
}

} // namespace reprise
