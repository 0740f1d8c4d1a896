#pragma once
#include "core/Image.h"

#include <QString>
#include <QStringList>

#include <filesystem>
#include <optional>
#include <string>

namespace liverseg::test {

// ../shared/data/<relative> when it exists (override with LIVERSEG_SHARED_DATA in the
// environment); nullopt otherwise, and the caller QSKIPs.
std::optional<std::filesystem::path> sharedData(const std::string& relative);

struct ProcessResult {
    int exitCode = -1;
    bool crashed = false;  // ended by a signal
    QString out;
    QString err;
};

// Runs the liverseg executable built with the tests.
ProcessResult runLiverseg(const QStringList& arguments, int timeoutMs = 120000);

// A TCP port on 127.0.0.1 that nothing listens on right now (for c10d rendezvous tests).
int freeLoopbackPort();

// `count` phantom cases (seeds 1..count) of side x side x slices voxels, as
// FOLDER/phantomI/ct.nii.gz + liver.nii.gz (the layout `liverseg phantom` writes).
void writePhantomCases(const std::filesystem::path& folder, int count, std::size_t side, std::size_t slices);

// A small oblique, anisotropic geometry for round-trip tests.
core::Geometry obliqueGeometry(std::size_t nx, std::size_t ny, std::size_t nz);

// Bytes of a file / writes bytes to a file.
std::string readBytes(const std::filesystem::path& path);
void writeBytes(const std::filesystem::path& path, const std::string& bytes);

}  // namespace liverseg::test
