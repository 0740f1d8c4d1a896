// Every kind of bad input a user can hand liverseg, made by the test itself: each must give
// one InputError naming the file and the problem (the CLI: one line, exit code 2), never a
// crash, an enormous allocation, or a partial output file.
#include "core/Errors.h"
#include "core/ImageIO.h"
#include "tests/support/TestSupport.h"

#include <QTemporaryDir>
#include <QtTest>
#include <zlib.h>

#include <cmath>
#include <cstring>
#include <limits>

using namespace liverseg;

namespace {

struct NiftiSpec {
    std::vector<std::int16_t> dims;  // dim[1..]
    std::int16_t datatype = 4;       // 4 int16, 16 float32, 2 uint8
    std::int16_t bitpix = 16;
};

template <typename T>
void put(std::string& bytes, std::size_t offset, T value) {
    std::memcpy(&bytes[offset], &value, sizeof(T));
}

// A minimal NIfTI-1 single file (.nii): 348-byte header, 4 bytes of extension flag, data.
std::string niftiBytes(const NiftiSpec& spec, const std::string& payload) {
    std::string bytes(352, '\0');
    put<std::int32_t>(bytes, 0, 348);
    put<std::int16_t>(bytes, 40, std::int16_t(spec.dims.size()));
    for (std::size_t i = 0; i < spec.dims.size(); ++i) put<std::int16_t>(bytes, 42 + 2 * i, spec.dims[i]);
    put<std::int16_t>(bytes, 70, spec.datatype);
    put<std::int16_t>(bytes, 72, spec.bitpix);
    put<float>(bytes, 76, 1.0f);  // qfac
    for (int i = 1; i < 8; ++i) put<float>(bytes, 76 + 4 * i, 1.0f);
    put<float>(bytes, 108, 352.0f);  // vox_offset
    std::memcpy(&bytes[344], "n+1\0", 4);
    return bytes + payload;
}

std::string gzipBytes(const std::string& raw) {
    QTemporaryDir dir;
    const std::string path = dir.filePath("x.gz").toStdString();
    gzFile file = gzopen(path.c_str(), "wb");
    gzwrite(file, raw.data(), unsigned(raw.size()));
    gzclose(file);
    return test::readBytes(path);
}

std::string floatPayload(std::size_t count, float special) {
    std::vector<float> values(count, 40.0f);
    values[count / 2] = special;
    return std::string(reinterpret_cast<const char*>(values.data()), count * sizeof(float));
}

// The message must name the file and contain `expected`.
void expectInputError(const std::function<void()>& action, const std::string& file, const std::string& expected) {
    try {
        action();
        QFAIL(("expected an InputError mentioning '" + expected + "'").c_str());
    } catch (const core::InputError& error) {
        const std::string message = error.what();
        QVERIFY2(message.find(file) != std::string::npos, error.what());
        QVERIFY2(message.find(expected) != std::string::npos, error.what());
        QVERIFY2(message.find('\n') == std::string::npos || expected == "holds:", error.what());
    }
}

}  // namespace

class BadInputTest : public QObject {
    Q_OBJECT
    QTemporaryDir dir_;

    std::string path(const char* name) const { return dir_.filePath(name).toStdString(); }
    void expectCtError(const std::string& file, const std::string& expected) {
        expectInputError([&] { core::readCt(file); }, file, expected);
    }

private Q_SLOTS:
    void missingFile() { expectCtError(path("absent.nii.gz"), "no such file"); }

    void emptyFile() {
        test::writeBytes(path("empty.nii"), "");
        expectCtError(path("empty.nii"), "empty");
    }

    void unsupportedExtension() {
        test::writeBytes(path("notes.txt"), "hello");
        expectCtError(path("notes.txt"), "unsupported file type");
    }

    void randomBytesNamedNiftiGz() {
        std::string noise(4096, '\0');
        for (std::size_t i = 0; i < noise.size(); ++i) noise[i] = char((i * 7919 + 13) % 251);
        test::writeBytes(path("noise.nii.gz"), noise);
        expectCtError(path("noise.nii.gz"), "noise.nii.gz");
    }

    void truncatedNiftiGz() {
        const std::string full = gzipBytes(niftiBytes({{64, 64, 32}}, std::string(64 * 64 * 32 * 2, '\x01')));
        test::writeBytes(path("truncated.nii.gz"), full.substr(0, full.size() / 2));
        expectCtError(path("truncated.nii.gz"), "truncated");
    }

    void truncatedPlainNifti() {
        const std::string full = niftiBytes({{64, 64, 32}}, std::string(64 * 64 * 32 * 2, '\x01'));
        test::writeBytes(path("truncated.nii"), full.substr(0, full.size() - 1000));
        expectCtError(path("truncated.nii"), "truncated");
    }

    void headerPromisingHugeDataIsRefusedBeforeAllocating() {
        // 32767^3 int16 voxels would be 70 TB: it must be refused from the header alone.
        test::writeBytes(path("huge.nii"), niftiBytes({{32767, 32767, 32767}}, std::string(1024, '\0')));
        expectCtError(path("huge.nii"), "promises");
        test::writeBytes(path("huge.nii.gz"), gzipBytes(niftiBytes({{32767, 32767, 32767}}, std::string(1024, '\0'))));
        expectCtError(path("huge.nii.gz"), "promises");
    }

    void headerPromisingMoreDataThanTheGzipHolds() {
        // 512x512x400 int16 = 200 MiB promised, 1 KiB present.
        test::writeBytes(path("lying.nii.gz"), gzipBytes(niftiBytes({{512, 512, 400}}, std::string(1024, '\0'))));
        expectCtError(path("lying.nii.gz"), "truncated");
    }

    void twoDimensionalImage() {
        test::writeBytes(path("flat.nii"), niftiBytes({{16, 16}}, std::string(16 * 16 * 2, '\0')));
        expectCtError(path("flat.nii"), "2D image");
    }

    void fourDimensionalImage() {
        test::writeBytes(path("series.nii"), niftiBytes({{8, 8, 4, 3}}, std::string(8 * 8 * 4 * 3 * 2, '\0')));
        expectCtError(path("series.nii"), "4D image");
    }

    void zeroSizedDimension() {
        test::writeBytes(path("zero.nii"), niftiBytes({{8, 0, 4}}, std::string(64, '\0')));
        expectCtError(path("zero.nii"), "zero.nii");
    }

    void nanAndInfInFloatData() {
        NiftiSpec spec{{8, 8, 4}, 16, 32};
        test::writeBytes(path("nan.nii"), niftiBytes(spec, floatPayload(256, std::nanf(""))));
        expectCtError(path("nan.nii"), "NaN");
        test::writeBytes(path("inf.nii"), niftiBytes(spec, floatPayload(256, std::numeric_limits<float>::infinity())));
        expectCtError(path("inf.nii"), "infinite");
    }

    void floatValuesOutsideInt16AreRefusedNotClamped() {
        NiftiSpec spec{{8, 8, 4}, 16, 32};
        test::writeBytes(path("wide.nii"), niftiBytes(spec, floatPayload(256, 1e6f)));
        expectCtError(path("wide.nii"), "outside");
    }

    void floatCtIsRoundedToHu() {
        NiftiSpec spec{{8, 8, 4}, 16, 32};
        test::writeBytes(path("float.nii"), niftiBytes(spec, floatPayload(256, -999.6f)));
        const core::LoadedCt loaded = core::readCt(path("float.nii"));
        QCOMPARE(int(loaded.volume.voxels()[128]), -1000);
        QCOMPARE(int(loaded.volume.voxels()[0]), 40);
    }

    void labelMapWithFractionalOrNegativeValues() {
        NiftiSpec spec{{8, 8, 4}, 16, 32};
        test::writeBytes(path("fraction.nii"), niftiBytes(spec, floatPayload(256, 0.5f)));
        expectInputError([&] { core::readLabelMap(path("fraction.nii")); }, path("fraction.nii"), "non-integer");
        test::writeBytes(path("negative.nii"), niftiBytes({{8, 8, 4}}, std::string(8 * 8 * 4 * 2, '\xff')));
        expectInputError([&] { core::readLabelMap(path("negative.nii")); }, path("negative.nii"), "outside");
    }

    void emptyDicomFolder() {
        QTemporaryDir empty;
        expectCtError(empty.path().toStdString(), "no DICOM series");
    }

    void folderOfNonDicomFiles() {
        QTemporaryDir folder;
        test::writeBytes(folder.filePath("readme.txt").toStdString(), "not dicom");
        expectCtError(folder.path().toStdString(), "no DICOM series");
    }

    void cliReportsOneLineAndExitCode2() {
        test::writeBytes(path("cli.nii.gz"), "garbage");
        for (const QStringList& arguments :
             {QStringList{"info", QString::fromStdString(path("cli.nii.gz"))},
              QStringList{"info", QString::fromStdString(path("missing.nrrd"))},
              QStringList{"info"}, QStringList{"info", "--bogus", "x"}, QStringList{"no-such-command"}}) {
            const test::ProcessResult result = test::runLiverseg(arguments);
            QVERIFY2(!result.crashed, qPrintable(arguments.join(' ')));
            QCOMPARE(result.exitCode, 2);
            QVERIFY2(!result.err.trimmed().isEmpty(), qPrintable(arguments.join(' ')));
            if (arguments.size() == 2 && arguments[0] == "info") {
                QCOMPARE(result.err.trimmed().count('\n'), 0);
                QVERIFY(result.out.isEmpty());
            }
        }
    }

    void failedPhantomWriteLeavesNoPartialFile() {
        // The output folder is a file: nothing may be created.
        test::writeBytes(path("blocker"), "x");
        const test::ProcessResult result = test::runLiverseg(
            {"phantom", "--out", QString::fromStdString(path("blocker")), "--size", "32,32,16"});
        QVERIFY(!result.crashed);
        QCOMPARE(result.exitCode, 2);
        QCOMPARE(test::readBytes(path("blocker")), std::string("x"));
    }
};

QTEST_GUILESS_MAIN(BadInputTest)
#include "test_badinput.moc"
