#include "ui/ViewerDocument.h"

#include "core/Errors.h"
#include "core/ImageIO.h"
#include "render/AxialLayout.h"

#include <string>

namespace liverseg::ui {

ViewerDocument loadViewerDocument(const std::filesystem::path& ct, const std::optional<std::filesystem::path>& mask) {
    core::LoadedCt loaded = core::readCt(ct);
    ViewerDocument document;
    document.ct = std::make_shared<const core::CtVolume>(std::move(loaded.volume));
    document.source = std::move(loaded.source);
    document.ctPath = ct;
    if (mask) document = withMask(std::move(document), *mask);
    return document;
}

ViewerDocument withMask(ViewerDocument document, const std::filesystem::path& path) {
    if (!document.ct) throw core::InputError("open a CT before its mask " + path.string());
    document.mask = std::make_shared<const core::LabelMap>(core::readLabelMapOnGrid(path, document.ct->geometry()));
    document.maskPath = path;
    return document;
}

int axialSliceCount(const core::Geometry& geometry) {
    return int(geometry.size[std::size_t(render::axialLayout(geometry).sliceAxis)]);
}

void requireAxialSlice(int slice, const core::Geometry& geometry) {
    const int count = axialSliceCount(geometry);
    if (slice < 0 || slice >= count) {
        throw core::InputError("--slice " + std::to_string(slice) + ": the CT has " + std::to_string(count) +
                               " axial slices (0-" + std::to_string(count - 1) + ")");
    }
}

}  // namespace liverseg::ui
