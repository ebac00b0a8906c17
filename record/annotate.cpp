// annotate(): builds the annotation record and hands it to the current runtime's journal.
#include "reprise/record/annotate.hpp"

#include "reprise/record/trace.hpp"
#include "reprise/runtime/internal/core.hpp"

namespace reprise {

void annotate(std::string_view name, std::initializer_list<AnnotationEntry> fields) {
    Runtime::Impl& rt = detail::current_runtime("annotate()");
    if (rt.journal == nullptr)
        return;
    // Over the limits, an annotation is cut to fit rather than ending the program: what
    // it says may come from data (a peer list, an error message), and a program must not
    // crash only while it is being recorded.
    auto cut = [](std::string_view s, std::size_t max) { return s.substr(0, max); };
    trace::Annotation a;
    a.name = name.empty() ? std::string_view("(unnamed)") : cut(name, trace::annotation_name_bytes_max);
    for (const AnnotationEntry& e : fields) {
        if (a.count == trace::annotation_fields_max || e.key.empty())
            continue;
        trace::AnnotationField& f = a.fields[a.count++];
        f.key = cut(e.key, trace::annotation_name_bytes_max);
        f.is_text = e.value.is_text();
        f.number = e.value.number();
        f.text = cut(e.value.text(), trace::annotation_text_bytes_max);
    }
    rt.journal->annotation(a);
}

} // namespace reprise
