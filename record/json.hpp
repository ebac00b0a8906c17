// JsonWriter: the one JSON writer of every tool's output (objects, arrays, escaped bytes), appending to a string.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace reprise {

/// Writes JSON into a string it owns, without building a tree first: dumping
/// millions of records stays a few appends per field. Commas are placed by the
/// writer; the caller pairs begin/end. Text is any bytes: printable ASCII stays as
/// it is, '"' and '\\' are escaped, every other byte becomes \u00XX (the bytes of a
/// trace need not be UTF-8, so each byte maps to one code point below 256 and
/// decodes back to the same byte in latin-1).
class JsonWriter {
public:
    JsonWriter& begin_object();
    JsonWriter& end_object();
    JsonWriter& begin_array();
    JsonWriter& end_array();
    /// A member's key (inside an object); the value follows.
    JsonWriter& key(std::string_view k);
    JsonWriter& value(std::string_view text);
    JsonWriter& value(const char* text) { return value(std::string_view(text)); }
    JsonWriter& value(std::int64_t v);
    JsonWriter& value(std::uint64_t v);
    JsonWriter& value(int v) { return value(static_cast<std::int64_t>(v)); }
    JsonWriter& value(unsigned v) { return value(static_cast<std::uint64_t>(v)); }
    JsonWriter& value(double v);
    JsonWriter& value(bool v);
    JsonWriter& null();
    /// Bytes as lowercase hex digits in a string.
    JsonWriter& hex(std::string_view bytes);
    /// A member at once: key(k).value(v).
    template <class T>
    JsonWriter& member(std::string_view k, const T& v) {
        key(k);
        return value(v);
    }

    const std::string& str() const noexcept { return out_; }
    std::string take() noexcept { return std::move(out_); }
    void clear() noexcept {
        out_.clear();
        need_comma_ = false;
    }

    /// Appends `bytes` escaped as the inside of a JSON string.
    static void escape(std::string_view bytes, std::string& out);

private:
    void separate();
    std::string out_;
    bool need_comma_ = false;
};

} // namespace reprise
