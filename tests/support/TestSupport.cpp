#include "tests/support/TestSupport.h"

#include <Eigen/Geometry>
#include <QProcess>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace liverseg::test {

std::optional<std::filesystem::path> sharedData(const std::string& relative) {
    const char* fromEnvironment = std::getenv("LIVERSEG_SHARED_DATA");
    const std::filesystem::path root = fromEnvironment ? fromEnvironment : LIVERSEG_SHARED_DATA;
    const std::filesystem::path path = root / relative;
    if (!std::filesystem::exists(path)) return std::nullopt;
    return path;
}

ProcessResult runLiverseg(const QStringList& arguments, int timeoutMs) {
    QProcess process;
    process.start(QString::fromUtf8(LIVERSEG_BINARY), arguments);
    ProcessResult result;
    if (!process.waitForStarted(10000)) throw std::runtime_error("cannot start " LIVERSEG_BINARY);
    if (!process.waitForFinished(timeoutMs)) {
        process.kill();
        process.waitForFinished();
        throw std::runtime_error("liverseg did not finish in time");
    }
    result.crashed = process.exitStatus() == QProcess::CrashExit;
    result.exitCode = process.exitCode();
    result.out = QString::fromUtf8(process.readAllStandardOutput());
    result.err = QString::fromUtf8(process.readAllStandardError());
    return result;
}

core::Geometry obliqueGeometry(std::size_t nx, std::size_t ny, std::size_t nz) {
    core::Geometry geometry;
    geometry.size = {nx, ny, nz};
    geometry.spacing = Eigen::Vector3d(0.7, 0.9, 2.5);
    geometry.origin = Eigen::Vector3d(-120.25, 33.5, -410.75);
    geometry.direction = (Eigen::AngleAxisd(0.3, Eigen::Vector3d::UnitZ()) *
                          Eigen::AngleAxisd(-0.2, Eigen::Vector3d::UnitX()))
                             .toRotationMatrix();
    return geometry;
}

std::string readBytes(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

void writeBytes(const std::filesystem::path& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary);
    out.write(bytes.data(), std::streamsize(bytes.size()));
}

}  // namespace liverseg::test
