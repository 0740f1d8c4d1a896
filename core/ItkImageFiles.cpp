#include "core/ItkImageFiles.h"

#include "core/AtomicFile.h"
#include "core/Errors.h"
#include "core/NiftiPrecheck.h"

#include <itkGDCMImageIO.h>
#include <itkGDCMSeriesFileNames.h>
#include <itkImage.h>
#include <itkImageFileReader.h>
#include <itkImageFileWriter.h>
#include <itkImageIOFactory.h>
#include <itkImageSeriesReader.h>
#include <itkJPEGImageIO.h>
#include <itkPNGImageIO.h>
#include <itkRGBPixel.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <new>
#include <sstream>

namespace liverseg::core::itkfiles {
namespace {

namespace fs = std::filesystem;
using FloatImage = itk::Image<float, 3>;

// More voxels than any CT we expect (a 1024x1024x2048 scan); beyond it a header is lying
// or the file is not a CT, and allocating would only take the machine down.
constexpr std::uint64_t kMaxVoxels = std::uint64_t(1) << 31;

// ITK prints its warnings to stderr (e.g. "No Series were found"); every problem we care
// about becomes an InputError with one clear line instead.
void silenceItkWarnings() {
    static const bool silenced = [] {
        itk::Object::GlobalWarningDisplayOff();
        return true;
    }();
    (void)silenced;
}

[[noreturn]] void fail(const fs::path& path, const std::string& problem) {
    throw InputError(path.string() + ": " + problem);
}

// ITK's exception text is several lines with source locations; keep the description.
std::string shortReason(const itk::ExceptionObject& error) {
    std::string text = error.GetDescription();
    std::replace(text.begin(), text.end(), '\n', ' ');
    while (!text.empty() && text.back() == ' ') text.pop_back();
    return text.size() > 200 ? text.substr(0, 200) + "..." : text;
}

std::string formatName(const fs::path& path) {
    const std::string ext = fullExtension(path);
    if (ext == ".nii" || ext == ".nii.gz") return "NIfTI";
    if (ext == ".nrrd" || ext == ".nhdr") return "NRRD";
    if (ext == ".mha" || ext == ".mhd") return "MetaImage";
    if (ext == ".dcm") return "DICOM";
    return "";
}

std::uint64_t physicalMemoryBytes() {
    const long pages = ::sysconf(_SC_PHYS_PAGES);
    const long pageSize = ::sysconf(_SC_PAGE_SIZE);
    return pages > 0 && pageSize > 0 ? std::uint64_t(pages) * std::uint64_t(pageSize) : 0;
}

void requireReasonableVoxelCount(const fs::path& path, std::uint64_t voxels) {
    if (voxels > kMaxVoxels) {
        std::ostringstream out;
        out << "header promises " << voxels << " voxels, more than liverseg reads (" << kMaxVoxels
            << "); the file is corrupt or not a CT";
        fail(path, out.str());
    }
    // Reading goes through a float buffer plus the int16 result: 6 bytes a voxel.
    const std::uint64_t needed = voxels * 6;
    const std::uint64_t available = physicalMemoryBytes();
    if (available != 0 && needed > available) {
        std::ostringstream out;
        out << "needs about " << needed / (1u << 20) << " MiB to load but this machine has "
            << available / (1u << 20) << " MiB";
        fail(path, out.str());
    }
}

struct HeaderFacts {
    itk::ImageIOBase::Pointer io;
    std::uint64_t voxels = 0;
};

// Reads and checks the header only: dimensionality, components, sizes, spacing, data size.
HeaderFacts inspectHeader(const fs::path& path) {
    const std::string ext = fullExtension(path);
    if (ext == ".nii" || ext == ".nii.gz") precheckNifti(path, kMaxVoxels);
    itk::ImageIOBase::Pointer io =
        itk::ImageIOFactory::CreateImageIO(path.c_str(), itk::ImageIOFactory::ReadMode);
    if (!io) fail(path, "not a readable image (format not recognised, or the file is corrupt)");
    io->SetFileName(path.string());
    try {
        io->ReadImageInformation();
    } catch (const itk::ExceptionObject& error) {
        fail(path, "cannot read the image header (" + shortReason(error) + ")");
    }
    const unsigned dimensions = io->GetNumberOfDimensions();
    if (dimensions < 3) fail(path, "is a " + std::to_string(dimensions) + "D image; liverseg needs a 3D volume");
    for (unsigned d = 3; d < dimensions; ++d) {
        if (io->GetDimensions(d) > 1) {
            fail(path, "is a " + std::to_string(dimensions) + "D image (" + std::to_string(io->GetDimensions(d)) +
                           " volumes along axis " + std::to_string(d) + "); liverseg needs a single 3D volume");
        }
    }
    if (io->GetNumberOfComponents() != 1) {
        fail(path, "has " + std::to_string(io->GetNumberOfComponents()) +
                       " components per voxel; expected one scalar value (grey CT or labels)");
    }
    HeaderFacts facts{io, 1};
    for (unsigned d = 0; d < 3; ++d) {
        if (io->GetDimensions(d) == 0) fail(path, "has a zero-sized dimension (axis " + std::to_string(d) + ")");
        facts.voxels *= io->GetDimensions(d);
        const double spacing = io->GetSpacing(d);
        if (!std::isfinite(spacing) || spacing <= 0) {
            fail(path, "has invalid voxel spacing " + std::to_string(spacing) + " along axis " + std::to_string(d));
        }
        if (!std::isfinite(io->GetOrigin(d))) fail(path, "has a non-finite origin");
    }
    requireReasonableVoxelCount(path, facts.voxels);
    return facts;
}

PlainGeometry geometryOf(const FloatImage& image) {
    PlainGeometry geometry;
    const auto size = image.GetLargestPossibleRegion().GetSize();
    for (unsigned d = 0; d < 3; ++d) {
        geometry.size[d] = size[d];
        geometry.spacing[d] = image.GetSpacing()[d];
        geometry.origin[d] = image.GetOrigin()[d];
        for (unsigned c = 0; c < 3; ++c) geometry.direction[d * 3 + c] = image.GetDirection()(d, c);
    }
    return geometry;
}

FloatImage::Pointer readFloatImage(const fs::path& path, const itk::ImageIOBase::Pointer& io) {
    auto reader = itk::ImageFileReader<FloatImage>::New();
    reader->SetImageIO(io);
    reader->SetFileName(path.string());
    try {
        reader->Update();
    } catch (const itk::ExceptionObject& error) {
        fail(path, "cannot read the voxel data, the file is corrupt or truncated (" + shortReason(error) + ")");
    } catch (const std::bad_alloc&) {
        fail(path, "not enough memory to load this image");
    }
    return reader->GetOutput();
}

// Converts float voxels to the integer type, refusing NaN/Inf, out-of-range and (for
// labels) non-integral values rather than silently changing them.
template <typename Voxel>
PlainImage<Voxel> convertVoxels(const fs::path& path, const FloatImage& image, bool requireIntegral,
                             const char* what) {
    PlainGeometry geometry = geometryOf(image);
    const float* source = image.GetBufferPointer();
    const std::size_t count = geometry.size[0] * geometry.size[1] * geometry.size[2];
    std::vector<Voxel> voxels(count);
    constexpr double low = std::numeric_limits<Voxel>::min();
    constexpr double high = std::numeric_limits<Voxel>::max();
    for (std::size_t i = 0; i < count; ++i) {
        const double value = source[i];
        if (!std::isfinite(value)) {
            fail(path, "contains NaN or infinite values (first at voxel " + std::to_string(i) + ")");
        }
        const double rounded = std::nearbyint(value);
        if (rounded < low || rounded > high) {
            std::ostringstream out;
            out << "value " << value << " at voxel " << i << " is outside the " << what << " range [" << low << ", "
                << high << "]";
            fail(path, out.str());
        }
        if (requireIntegral && std::abs(rounded - value) > 1e-3) {
            fail(path, "has non-integer values (" + std::to_string(value) + "); expected integer labels");
        }
        voxels[i] = Voxel(rounded);
    }
    return PlainImage<Voxel>{std::move(geometry), std::move(voxels)};
}

std::string dicomTag(itk::GDCMImageIO& io, const char* tag) {
    std::string value;
    io.GetValueFromTag(tag, value);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\0')) value.pop_back();
    return value;
}

void describeSeries(DicomSeries& series) {
    auto io = itk::GDCMImageIO::New();
    io->SetFileName(series.files.front());
    try {
        io->ReadImageInformation();
        series.modality = dicomTag(*io, "0008|0060");
        series.description = dicomTag(*io, "0008|103e");
    } catch (const itk::ExceptionObject&) {
        // Not an image GDCM can decode (e.g. a structured report): leave modality empty.
    }
}

std::string seriesSummary(const DicomSeries& series) {
    std::ostringstream out;
    out << series.uid << " (" << (series.modality.empty() ? "unknown modality" : series.modality) << ", "
        << series.files.size() << (series.files.size() == 1 ? " file" : " files");
    if (!series.description.empty()) out << ", \"" << series.description << "\"";
    out << ")";
    return out.str();
}

std::size_t chooseSeries(const fs::path& folder, const std::vector<DicomSeries>& all,
                         const std::string& seriesUid, CtSource& source) {
    if (!seriesUid.empty()) {
        for (std::size_t i = 0; i < all.size(); ++i) {
            if (all[i].uid == seriesUid) return i;
        }
        std::string available;
        for (const auto& series : all) available += "\n  " + seriesSummary(series);
        fail(folder, "no series with UID " + seriesUid + "; the folder holds:" + available);
    }
    // `all` is sorted largest first: the first CT series is the largest CT series.
    for (std::size_t i = 0; i < all.size(); ++i) {
        if (all[i].modality == "CT") {
            if (all.size() > 1) {
                source.notes.push_back("picked CT series " + seriesSummary(all[i]) + " of " +
                                       std::to_string(all.size()) + " series; choose another with --series UID");
            }
            return i;
        }
    }
    source.warnings.push_back("no CT series in " + folder.string() + "; reading " + seriesSummary(all.front()) +
                              ": Hounsfield windows and the networks assume CT");
    return 0;
}

PlainCt readDicomSeries(const fs::path& folder, const fs::path& requestedFile, const std::string& seriesUid) {
    std::vector<DicomSeries> all = listDicomSeries(folder);
    if (all.empty()) fail(folder, "no DICOM series found in this folder");
    CtSource source;
    source.format = "DICOM";
    std::size_t chosen = 0;
    if (!requestedFile.empty() && seriesUid.empty()) {
        const std::string wanted = fs::absolute(requestedFile).lexically_normal().string();
        const auto holds = [&](const DicomSeries& series) {
            return std::any_of(series.files.begin(), series.files.end(), [&](const std::string& file) {
                return fs::absolute(file).lexically_normal().string() == wanted;
            });
        };
        const auto found = std::find_if(all.begin(), all.end(), holds);
        if (found == all.end()) fail(requestedFile, "not a DICOM image file");
        chosen = std::size_t(found - all.begin());
    } else {
        chosen = chooseSeries(folder, all, seriesUid, source);
    }
    const DicomSeries& series = all[chosen];
    if (series.modality != "CT" && !series.modality.empty()) {
        source.warnings.push_back("series " + series.uid + " has modality " + series.modality +
                                  ", not CT: Hounsfield windows and the networks assume CT");
    }

    auto io = itk::GDCMImageIO::New();
    io->SetFileName(series.files.front());
    try {
        io->ReadImageInformation();
    } catch (const itk::ExceptionObject& error) {
        fail(series.files.front(), "cannot read the DICOM header (" + shortReason(error) + ")");
    }
    requireReasonableVoxelCount(folder, std::uint64_t(io->GetDimensions(0)) * io->GetDimensions(1) *
                                            std::max<std::uint64_t>(1, series.files.size()));

    auto reader = itk::ImageSeriesReader<FloatImage>::New();
    reader->SetImageIO(io);
    reader->SetFileNames(series.files);
    try {
        reader->Update();
    } catch (const itk::ExceptionObject& error) {
        fail(folder, "cannot read DICOM series " + series.uid + " (" + shortReason(error) + ")");
    } catch (const std::bad_alloc&) {
        fail(folder, "not enough memory to load DICOM series " + series.uid);
    }
    PlainCt loaded{convertVoxels<std::int16_t>(folder, *reader->GetOutput(), false, "int16 HU"), std::move(source)};
    loaded.source.series = series;
    for (std::size_t i = 0; i < all.size(); ++i) {
        if (i != chosen) loaded.source.otherSeries.push_back(all[i]);
    }
    return loaded;
}

void requireReadableFile(const fs::path& path) {
    std::error_code error;
    const auto status = fs::status(path, error);
    if (error || !fs::exists(status)) fail(path, "no such file or folder");
    if (fs::is_directory(status)) return;
    if (!fs::is_regular_file(status)) fail(path, "not a regular file");
    std::ifstream probe(path, std::ios::binary);
    if (!probe) fail(path, "cannot be opened for reading (permissions?)");
    if (fs::file_size(path) == 0) fail(path, "is empty (0 bytes)");
}

template <typename Voxel>
typename itk::Image<Voxel, 3>::Pointer toItkImage(const PlainGeometry& geometry, const Voxel* voxels) {
    using ItkImage = itk::Image<Voxel, 3>;
    auto image = ItkImage::New();
    typename ItkImage::SizeType size;
    typename ItkImage::SpacingType spacing;
    typename ItkImage::PointType origin;
    typename ItkImage::DirectionType direction;
    for (unsigned d = 0; d < 3; ++d) {
        size[d] = geometry.size[d];
        spacing[d] = geometry.spacing[d];
        origin[d] = geometry.origin[d];
        for (unsigned c = 0; c < 3; ++c) direction(d, c) = geometry.direction[d * 3 + c];
    }
    image->SetRegions(typename ItkImage::RegionType(size));
    image->SetSpacing(spacing);
    image->SetOrigin(origin);
    image->SetDirection(direction);
    image->Allocate();
    std::copy(voxels, voxels + image->GetLargestPossibleRegion().GetNumberOfPixels(), image->GetBufferPointer());
    return image;
}

template <typename Voxel>
void writeItkImage(const PlainGeometry& geometry, const Voxel* voxels, const fs::path& path) {
    const std::string ext = fullExtension(path);
    if (ext != ".nii" && ext != ".nii.gz" && ext != ".nrrd" && ext != ".mha") {
        throw InputError(path.string() + ": cannot write '" + ext + "' files; use .nii.gz, .nii, .nrrd or .mha");
    }
    if (geometry.size[0] * geometry.size[1] * geometry.size[2] == 0) {
        throw InputError(path.string() + ": refusing to write an empty image");
    }
    const auto image = toItkImage(geometry, voxels);
    writeAtomically(path, [&](const fs::path& temporary) {
        auto writer = itk::ImageFileWriter<itk::Image<Voxel, 3>>::New();
        writer->SetFileName(temporary.string());
        writer->SetInput(image);
        writer->SetUseCompression(ext != ".nii");
        try {
            writer->Update();
        } catch (const itk::ExceptionObject& error) {
            throw InputError(path.string() + ": cannot write (" + shortReason(error) + ")");
        }
    });
}

}  // namespace

std::vector<DicomSeries> listDicomSeries(const fs::path& folder) {
    silenceItkWarnings();
    auto names = itk::GDCMSeriesFileNames::New();
    names->SetUseSeriesDetails(false);
    names->SetRecursive(false);
    std::vector<DicomSeries> all;
    try {
        names->SetDirectory(folder.string());
        for (const std::string& uid : names->GetSeriesUIDs()) {
            DicomSeries series;
            series.uid = uid;
            series.files = names->GetFileNames(uid);
            if (series.files.empty()) continue;
            describeSeries(series);
            all.push_back(std::move(series));
        }
    } catch (const itk::ExceptionObject& error) {
        fail(folder, "cannot scan for DICOM files (" + shortReason(error) + ")");
    }
    std::stable_sort(all.begin(), all.end(),
                     [](const DicomSeries& a, const DicomSeries& b) { return a.files.size() > b.files.size(); });
    return all;
}

PlainCt readCt(const fs::path& path, const std::string& seriesUid) {
    silenceItkWarnings();
    requireReadableFile(path);
    if (fs::is_directory(path)) return readDicomSeries(path, {}, seriesUid);
    const std::string format = formatName(path);
    if (format == "DICOM") {
        return readDicomSeries(path.parent_path().empty() ? fs::path(".") : path.parent_path(), path, seriesUid);
    }
    if (format.empty()) {
        fail(path, "unsupported file type '" + fullExtension(path) +
                       "'; liverseg reads .nii, .nii.gz, .nrrd, .nhdr, .mha, .mhd and DICOM folders");
    }
    const HeaderFacts header = inspectHeader(path);
    const FloatImage::Pointer image = readFloatImage(path, header.io);
    PlainCt loaded{convertVoxels<std::int16_t>(path, *image, false, "int16 HU"), {}};
    loaded.source.format = format;
    return loaded;
}

PlainImage<std::uint8_t> readLabels(const fs::path& path) {
    silenceItkWarnings();
    requireReadableFile(path);
    if (fs::is_directory(path)) fail(path, "is a folder; a label map must be a single image file");
    if (formatName(path).empty() || formatName(path) == "DICOM") {
        fail(path, "unsupported label map type '" + fullExtension(path) + "'; use .nii, .nii.gz, .nrrd or .mha");
    }
    const HeaderFacts header = inspectHeader(path);
    const FloatImage::Pointer image = readFloatImage(path, header.io);
    return convertVoxels<std::uint8_t>(path, *image, true, "label (0-255)");
}

void writeImage(const PlainGeometry& geometry, const std::int16_t* voxels, const fs::path& path) {
    writeItkImage(geometry, voxels, path);
}

void writeImage(const PlainGeometry& geometry, const std::uint8_t* voxels, const fs::path& path) {
    writeItkImage(geometry, voxels, path);
}

namespace {

itk::ImageIOBase::Pointer pictureIo(const fs::path& path) {
    const std::string ext = fullExtension(path);
    if (ext == ".png") return itk::PNGImageIO::New().GetPointer();
    if (ext == ".jpg" || ext == ".jpeg") return itk::JPEGImageIO::New().GetPointer();
    fail(path, "unsupported picture type '" + ext + "'; use .png, .jpg or .jpeg");
}

}  // namespace

PlainPicture readGreyPicture(const fs::path& path) {
    silenceItkWarnings();
    requireReadableFile(path);
    if (fs::is_directory(path)) fail(path, "is a folder, not a picture");
    itk::ImageIOBase::Pointer io = pictureIo(path);
    if (!io->CanReadFile(path.c_str())) fail(path, "not a readable " + fullExtension(path).substr(1) + " file");
    io->SetFileName(path.string());
    try {
        io->ReadImageInformation();
    } catch (const itk::ExceptionObject& error) {
        fail(path, "cannot read the picture header (" + shortReason(error) + ")");
    }
    if (io->GetNumberOfDimensions() != 2) fail(path, "is not a 2D picture");
    if (io->GetComponentType() != itk::IOComponentEnum::UCHAR) {
        fail(path, "has " + std::string(io->GetComponentTypeAsString(io->GetComponentType())) +
                       " samples; expected 8-bit grey");
    }
    using GreyPicture = itk::Image<std::uint8_t, 2>;
    auto reader = itk::ImageFileReader<GreyPicture>::New();
    reader->SetImageIO(io);
    reader->SetFileName(path.string());
    try {
        reader->Update();
    } catch (const itk::ExceptionObject& error) {
        fail(path, "cannot read the picture, the file is corrupt or truncated (" + shortReason(error) + ")");
    }
    const GreyPicture& image = *reader->GetOutput();
    const auto size = image.GetLargestPossibleRegion().GetSize();
    PlainPicture picture{size[0], size[1], 1, {}};
    picture.pixels.assign(image.GetBufferPointer(), image.GetBufferPointer() + size[0] * size[1]);
    return picture;
}

void writePng(const PlainPicture& picture, const fs::path& path) {
    if (fullExtension(path) != ".png") throw InputError(path.string() + ": pictures are written as .png");
    if (picture.width == 0 || picture.height == 0 || (picture.components != 1 && picture.components != 3) ||
        picture.pixels.size() != picture.width * picture.height * std::size_t(picture.components)) {
        throw InputError(path.string() + ": refusing to write an empty or inconsistent picture");
    }
    const auto write = [&](auto image) {
        using Image = typename decltype(image)::ObjectType;
        typename Image::SizeType size;
        size[0] = picture.width;
        size[1] = picture.height;
        image->SetRegions(typename Image::RegionType(size));
        image->Allocate();
        std::copy(picture.pixels.begin(), picture.pixels.end(),
                  reinterpret_cast<std::uint8_t*>(image->GetBufferPointer()));
        writeAtomically(path, [&](const fs::path& temporary) {
            auto writer = itk::ImageFileWriter<Image>::New();
            writer->SetImageIO(itk::PNGImageIO::New());
            writer->SetFileName(temporary.string());
            writer->SetInput(image);
            try {
                writer->Update();
            } catch (const itk::ExceptionObject& error) {
                throw InputError(path.string() + ": cannot write (" + shortReason(error) + ")");
            }
        });
    };
    if (picture.components == 1) {
        write(itk::Image<std::uint8_t, 2>::New());
    } else {
        write(itk::Image<itk::RGBPixel<std::uint8_t>, 2>::New());
    }
}

}  // namespace liverseg::core::itkfiles
