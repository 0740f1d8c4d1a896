#pragma once
#include "core/Image.h"
#include "core/ImageSource.h"
#include "render/WindowLevel.h"

#include <filesystem>
#include <memory>
#include <optional>

namespace liverseg::ui {

// What the viewer shows: a CT and optionally a label map on its grid. Shared, immutable
// snapshots: background jobs build new documents, the UI thread swaps them in.
struct ViewerDocument {
    std::shared_ptr<const core::CtVolume> ct;
    core::CtSource source;
    std::filesystem::path ctPath;
    std::shared_ptr<const core::LabelMap> mask;
    std::filesystem::path maskPath;
};

// Where to start once a document is shown; unset fields keep the current view (the middle
// slice for a new CT).
struct InitialView {
    std::optional<int> slice;
    std::optional<render::WindowLevel> windowLevel;
};

// Reads a CT (file or DICOM folder) and, when given, a mask that must lie on its grid.
// Throws core::InputError naming the file and the problem.
ViewerDocument loadViewerDocument(const std::filesystem::path& ct, const std::optional<std::filesystem::path>& mask);

// `document` with the mask at `path` (on the document's CT grid). Throws core::InputError.
ViewerDocument withMask(ViewerDocument document, const std::filesystem::path& path);

// Number of axial slices the viewer shows for a CT grid.
int axialSliceCount(const core::Geometry& geometry);

// Throws core::InputError when `slice` is not an axial slice of `geometry`.
void requireAxialSlice(int slice, const core::Geometry& geometry);

}  // namespace liverseg::ui
