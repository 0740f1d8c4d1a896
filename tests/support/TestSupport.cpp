#include "tests/support/TestSupport.h"

#include "core/ImageIO.h"
#include "core/Phantom.h"

#include <Eigen/Geometry>
#include <QProcess>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

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

void writePhantomCases(const std::filesystem::path& folder, int count, std::size_t side, std::size_t slices) {
    for (int i = 0; i < count; ++i) {
        core::PhantomOptions options;
        options.seed = std::uint64_t(i + 1);
        options.size = {side, side, slices};
        const core::PhantomCase phantom = core::makeAbdominalPhantom(options);
        const std::filesystem::path caseFolder = folder / ("phantom" + std::to_string(i));
        std::filesystem::create_directories(caseFolder);
        core::writeCtVolume(phantom.ct, caseFolder / "ct.nii.gz");
        core::writeLabelMap(phantom.liver, caseFolder / "liver.nii.gz");
    }
}

int freeLoopbackPort() {
    const int socketHandle = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    socklen_t length = sizeof address;
    if (socketHandle < 0 || ::bind(socketHandle, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::getsockname(socketHandle, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
        throw std::runtime_error("no free TCP port on 127.0.0.1");
    }
    const int port = ntohs(address.sin_port);
    ::close(socketHandle);
    return port;
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
