#include "core/DatasetPicture.h"

#include "core/ItkImageFiles.h"

namespace liverseg::core {

Picture readGreyPicture(const std::filesystem::path& path) {
    itkfiles::PlainPicture plain = itkfiles::readGreyPicture(path);
    return Picture{plain.width, plain.height, plain.components, std::move(plain.pixels)};
}

void writePng(const Picture& picture, const std::filesystem::path& path) {
    itkfiles::writePng(itkfiles::PlainPicture{picture.width, picture.height, picture.components, picture.pixels}, path);
}

}  // namespace liverseg::core
