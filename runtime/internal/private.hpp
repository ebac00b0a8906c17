// Guard of the private headers: they compile only inside libreprise's own build.
#pragma once

#ifndef REPRISE_BUILDING_LIBREPRISE
#error "reprise internal headers are private to libreprise; include the public headers instead"
#endif
