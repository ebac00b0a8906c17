// JsonWriter: commas, escapes and numbers, appended in place.
#include "reprise/record/json.hpp"

#include <fmt/format.h>

namespace reprise {

void JsonWriter::separate() {
    if (need_comma_)
        out_ += ',';
    need_comma_ = true;
}

JsonWriter& JsonWriter::begin_object() {
    separate();
    out_ += '{';
    need_comma_ = false;
    return *this;
}

JsonWriter& JsonWriter::end_object() {
    out_ += '}';
    need_comma_ = true;
    return *this;
}

JsonWriter& JsonWriter::begin_array() {
    separate();
    out_ += '[';
    need_comma_ = false;
    return *this;
}

JsonWriter& JsonWriter::end_array() {
    out_ += ']';
    need_comma_ = true;
    return *this;
}

JsonWriter& JsonWriter::key(std::string_view k) {
    separate();
    out_ += '"';
    escape(k, out_);
    out_ += "\":";
    need_comma_ = false;  // the value follows the colon
    return *this;
}

JsonWriter& JsonWriter::value(std::string_view text) {
    separate();
    out_ += '"';
    escape(text, out_);
    out_ += '"';
    return *this;
}

JsonWriter& JsonWriter::value(std::int64_t v) {
    separate();
    fmt::format_to(std::back_inserter(out_), "{}", v);
    return *this;
}

JsonWriter& JsonWriter::value(std::uint64_t v) {
    separate();
    fmt::format_to(std::back_inserter(out_), "{}", v);
    return *this;
}

JsonWriter& JsonWriter::value(double v) {
    separate();
    // JSON has no NaN or infinity.
    if (v != v || v - v != 0)
        out_ += "null";
    else
        fmt::format_to(std::back_inserter(out_), "{}", v);
    return *this;
}

JsonWriter& JsonWriter::value(bool v) {
    separate();
    out_ += v ? "true" : "false";
    return *this;
}

JsonWriter& JsonWriter::null() {
    separate();
    out_ += "null";
    return *this;
}

JsonWriter& JsonWriter::hex(std::string_view bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    separate();
    out_ += '"';
    for (unsigned char c : bytes) {
        out_ += digits[c >> 4];
        out_ += digits[c & 15];
    }
    out_ += '"';
    return *this;
}

void JsonWriter::escape(std::string_view bytes, std::string& out) {
    static constexpr char digits[] = "0123456789abcdef";
    for (unsigned char c : bytes) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c >= 0x20 && c < 0x7f) {
            out += static_cast<char>(c);
        } else {
            out += "\\u00";
            out += digits[c >> 4];
            out += digits[c & 15];
        }
    }
}

} // namespace reprise
