// annotate(): builds the annotation record and hands it to the current runtime's journal.
#include "reprise/record/annotate.hpp"

#include "reprise/record/trace.hpp"
#include "reprise/runtime/internal/core.hpp"

namespace reprise {

void annotate(std::string_view name, std::initializer_list<AnnotationEntry> fields) {
    Runtime::Impl& rt = detail::current_runtime("annotate()");
    REPRISE_ASSERT_MSG(fields.size() <= trace::annotation_fields_max, "an annotation has at most 8 fields");
    if (rt.journal == nullptr)
        return;
    trace::Annotation a;
    a.name = name;
    for (const AnnotationEntry& e : fields) {
        trace::AnnotationField& f = a.fields[a.count++];
        f.key = e.key;
        f.is_text = e.value.is_text();
        f.number = e.value.number();
        f.text = e.value.text();
    }
    rt.journal->annotation(a);
}

} // namespace reprise
