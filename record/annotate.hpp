// annotate(): a program's own milestones ("became leader", term 3), written into the trace beside its events.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>

namespace reprise {

/// A field's value: an integer or a short text.
class AnnotationValue {
public:
    template <class T, class = std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>>>
    AnnotationValue(T v) : number_(static_cast<std::int64_t>(v)) {}  // NOLINT: implicit by design
    AnnotationValue(bool v) : number_(v ? 1 : 0) {}
    AnnotationValue(std::string_view v) : is_text_(true), text_(v) {}
    AnnotationValue(const char* v) : is_text_(true), text_(v) {}
    AnnotationValue(const std::string& v) : is_text_(true), text_(v) {}

    bool is_text() const noexcept { return is_text_; }
    std::int64_t number() const noexcept { return number_; }
    std::string_view text() const noexcept { return text_; }

private:
    bool is_text_ = false;
    std::int64_t number_ = 0;
    std::string_view text_;
};

struct AnnotationEntry {
    std::string_view key;
    AnnotationValue value;
};

/// Writes a milestone of the program into the trace, at this point of its events:
/// `annotate("became_leader", {{"term", 3}, {"node", name}})`. Tools show it
/// (`reprise dump`, the cluster timeline); replay checks nothing about it and skips
/// recorded ones, so a build with one more annotation still replays. Not an input:
/// it changes nothing the program observes. Live without recording it costs a branch.
/// Limits (trace::annotation_*_max): a name and keys of at most 64 bytes, at most 8
/// fields, texts of at most 256 bytes. Longer names, keys and texts are cut to fit, fields
/// past the 8th and fields with an empty key are left out: never an error.
void annotate(std::string_view name, std::initializer_list<AnnotationEntry> fields = {});

} // namespace reprise
