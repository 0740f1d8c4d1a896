#include "core/Dataset.h"

#include "core/AtomicFile.h"
#include "core/Errors.h"
#include "core/ImageIO.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>

namespace liverseg::core {
namespace {

namespace fs = std::filesystem;

const char* kLayoutsExpected =
    "expected imagesTr/ + labelsTr/ (Decathlon/nnU-Net), images/ + masks/ (2D pictures), "
    "volume-N.nii + segmentation-N.nii (LiTS), case folders with ct.nii.gz + liver.nii.gz, "
    "or CASE.nii.gz + CASE_mask.nii.gz pairs";

const std::vector<std::string> kCaseFolderMaskNames = {"liver", "mask", "segmentation", "label", "labels"};
const std::vector<std::string> kPairMaskSuffixes = {"_mask", "_seg", "_label", "_labels", "_liver"};

bool isHidden(const fs::path& path) { return path.filename().string().rfind('.', 0) == 0; }

bool isVolumeFile(const fs::path& path) {
    return fs::is_regular_file(path) && !isHidden(path) && isSupportedImageExtension(path) &&
           fullExtension(path) != ".dcm";
}

bool isPictureFile(const fs::path& path) {
    const std::string ext = fullExtension(path);
    return fs::is_regular_file(path) && !isHidden(path) && (ext == ".png" || ext == ".jpg" || ext == ".jpeg");
}

std::string stemOf(const fs::path& path) {
    const std::string name = path.filename().string();
    return name.substr(0, name.size() - fullExtension(path).size());
}

bool endsWith(const std::string& text, const std::string& suffix) {
    return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::vector<fs::path> sortedEntries(const fs::path& folder) {
    std::vector<fs::path> entries;
    std::error_code error;
    for (fs::directory_iterator it(folder, error), end; !error && it != end; it.increment(error)) {
        entries.push_back(it->path());
    }
    if (error) throw InputError(folder.string() + ": cannot list the folder (" + error.message() + ")");
    std::sort(entries.begin(), entries.end());
    return entries;
}

// "case2" < "case10": digit runs compare as numbers.
bool naturalLess(const std::string& a, const std::string& b) {
    std::size_t i = 0, j = 0;
    while (i < a.size() && j < b.size()) {
        if (std::isdigit((unsigned char)a[i]) && std::isdigit((unsigned char)b[j])) {
            std::size_t iEnd = i, jEnd = j;
            while (iEnd < a.size() && std::isdigit((unsigned char)a[iEnd])) ++iEnd;
            while (jEnd < b.size() && std::isdigit((unsigned char)b[jEnd])) ++jEnd;
            std::string x = a.substr(i, iEnd - i), y = b.substr(j, jEnd - j);
            x.erase(0, std::min(x.find_first_not_of('0'), x.size()));
            y.erase(0, std::min(y.find_first_not_of('0'), y.size()));
            if (x.size() != y.size()) return x.size() < y.size();
            if (x != y) return x < y;
            i = iEnd;
            j = jEnd;
        } else {
            if (a[i] != b[j]) return a[i] < b[j];
            ++i;
            ++j;
        }
    }
    return a.size() - i < b.size() - j;
}

void sortCases(Dataset& dataset) {
    std::sort(dataset.cases.begin(), dataset.cases.end(),
              [](const DatasetCase& a, const DatasetCase& b) { return naturalLess(a.id, b.id); });
    for (std::size_t i = 1; i < dataset.cases.size(); ++i) {
        if (dataset.cases[i].id == dataset.cases[i - 1].id) {
            throw InputError(dataset.cases[i].image.string() + ": case '" + dataset.cases[i].id +
                             "' appears twice (" + dataset.cases[i - 1].image.string() + ")");
        }
    }
}

// Volume files of a folder by stem; two files with the same stem are ambiguous.
std::map<std::string, fs::path> volumesByStem(const fs::path& folder) {
    std::map<std::string, fs::path> byStem;
    for (const fs::path& entry : sortedEntries(folder)) {
        if (!isVolumeFile(entry)) continue;
        const auto [it, inserted] = byStem.emplace(stemOf(entry), entry);
        if (!inserted) {
            throw InputError(entry.string() + ": ambiguous, " + it->second.filename().string() + " has the same name");
        }
    }
    return byStem;
}

// --- Decathlon / nnU-Net ------------------------------------------------------------

// "liver_3_0000" -> ("liver_3", 0); "liver_3" -> ("liver_3", -1).
std::pair<std::string, int> splitChannelSuffix(const std::string& stem) {
    if (stem.size() > 5 && stem[stem.size() - 5] == '_' &&
        std::all_of(stem.end() - 4, stem.end(), [](char c) { return std::isdigit((unsigned char)c); })) {
        return {stem.substr(0, stem.size() - 5), std::stoi(stem.substr(stem.size() - 4))};
    }
    return {stem, -1};
}

Dataset openDecathlon(const fs::path& root) {
    Dataset dataset{root, DatasetLayout::Decathlon, {}, {}};
    const fs::path images = root / "imagesTr", labels = root / "labelsTr";
    if (!fs::is_directory(labels)) throw InputError(images.string() + ": has no labelsTr/ folder beside it");
    std::map<std::string, fs::path> labelByCase = volumesByStem(labels);
    std::map<std::string, fs::path> imageByCase;
    std::set<int> otherChannels;
    for (const auto& [stem, path] : volumesByStem(images)) {
        const auto [caseId, channel] = splitChannelSuffix(stem);
        if (channel > 0) {
            otherChannels.insert(channel);
            continue;
        }
        if (!imageByCase.emplace(caseId, path).second) {
            throw InputError(path.string() + ": case '" + caseId + "' has two images");
        }
    }
    if (!otherChannels.empty()) {
        dataset.notes.push_back("imagesTr holds " + std::to_string(otherChannels.size() + 1) +
                                " channels per case; training uses channel 0000 (the CT)");
    }
    for (const auto& [caseId, image] : imageByCase) {
        const auto label = labelByCase.find(caseId);
        if (label == labelByCase.end()) {
            throw InputError(image.string() + ": CT without a mask (expected labelsTr/" + caseId + fullExtension(image) + ")");
        }
        dataset.cases.push_back({caseId, caseId, image, label->second});
        labelByCase.erase(label);
    }
    if (!labelByCase.empty()) {
        throw InputError(labelByCase.begin()->second.string() + ": mask without a CT in imagesTr/");
    }
    if (fs::is_directory(root / "imagesTs")) dataset.notes.push_back("imagesTs/ ignored (no labels)");
    return dataset;
}

// --- 2D pictures ---------------------------------------------------------------------

Dataset openSlices2D(const fs::path& root) {
    Dataset dataset{root, DatasetLayout::Slices2D, {}, {}};
    std::map<std::string, fs::path> masks;
    for (const fs::path& entry : sortedEntries(root / "masks")) {
        if (isPictureFile(entry)) masks.emplace(stemOf(entry), entry);
    }
    for (const fs::path& entry : sortedEntries(root / "images")) {
        if (!isPictureFile(entry)) continue;
        const std::string stem = stemOf(entry);
        const auto mask = masks.find(stem);
        if (mask == masks.end()) {
            throw InputError(entry.string() + ": picture without a mask (expected masks/" + entry.filename().string() + ")");
        }
        dataset.cases.push_back({stem, volumeIdOfSliceName(entry.filename().string()), entry, mask->second});
        masks.erase(mask);
    }
    if (!masks.empty()) throw InputError(masks.begin()->second.string() + ": mask without a picture in images/");
    return dataset;
}

// --- LiTS ----------------------------------------------------------------------------

// "volume-12.nii.gz" -> "12"; empty when the name is not `prefix` N .nii[.gz].
std::string litsNumber(const fs::path& path, const std::string& prefix) {
    const std::string ext = fullExtension(path);
    if (ext != ".nii" && ext != ".nii.gz") return {};
    const std::string stem = stemOf(path);
    if (stem.rfind(prefix, 0) != 0 || stem.size() == prefix.size()) return {};
    const std::string number = stem.substr(prefix.size());
    return std::all_of(number.begin(), number.end(), [](char c) { return std::isdigit((unsigned char)c); }) ? number
                                                                                                           : std::string();
}

std::vector<fs::path> litsFolders(const fs::path& root) {
    std::vector<fs::path> folders{root};
    for (const fs::path& entry : sortedEntries(root)) {
        if (fs::is_directory(entry) && !isHidden(entry)) folders.push_back(entry);
    }
    return folders;
}

bool looksLikeLits(const fs::path& root) {
    for (const fs::path& folder : litsFolders(root)) {
        for (const fs::path& entry : sortedEntries(folder)) {
            if (fs::is_regular_file(entry) && !litsNumber(entry, "volume-").empty()) return true;
        }
    }
    return false;
}

Dataset openLits(const fs::path& root) {
    Dataset dataset{root, DatasetLayout::Lits, {}, {}};
    std::map<std::string, fs::path> volumes, segmentations;
    for (const fs::path& folder : litsFolders(root)) {
        for (const fs::path& entry : sortedEntries(folder)) {
            if (!fs::is_regular_file(entry)) continue;
            for (auto [prefix, target] : {std::pair{"volume-", &volumes}, std::pair{"segmentation-", &segmentations}}) {
                const std::string number = litsNumber(entry, prefix);
                if (number.empty()) continue;
                const auto [it, inserted] = target->emplace(number, entry);
                if (!inserted) throw InputError(entry.string() + ": duplicate of " + it->second.string());
            }
        }
    }
    for (const auto& [number, volume] : volumes) {
        const auto segmentation = segmentations.find(number);
        if (segmentation == segmentations.end()) {
            throw InputError(volume.string() + ": CT without a mask (expected segmentation-" + number + ".nii)");
        }
        const std::string id = "volume-" + number;
        dataset.cases.push_back({id, id, volume, segmentation->second});
        segmentations.erase(segmentation);
    }
    if (!segmentations.empty()) throw InputError(segmentations.begin()->second.string() + ": mask without its volume-N CT");
    return dataset;
}

// --- case folders and file pairs ---------------------------------------------------------

std::optional<fs::path> volumeNamed(const std::map<std::string, fs::path>& byStem, const std::string& stem) {
    const auto found = byStem.find(stem);
    return found == byStem.end() ? std::nullopt : std::optional<fs::path>(found->second);
}

bool isCaseFolder(const fs::path& folder) {
    return fs::is_directory(folder) && !isHidden(folder) && volumeNamed(volumesByStem(folder), "ct").has_value();
}

DatasetCase caseFromFolder(const fs::path& folder, const DatasetOptions& options) {
    const auto byStem = volumesByStem(folder);
    const fs::path ct = *volumeNamed(byStem, "ct");
    std::string id = fs::absolute(folder).lexically_normal().filename().string();
    if (id.empty()) id = fs::absolute(folder).lexically_normal().parent_path().filename().string();
    if (!options.caseMaskName.empty()) {
        const fs::path mask = folder / options.caseMaskName;
        if (!fs::is_regular_file(mask)) throw InputError(ct.string() + ": CT without a mask (expected " + mask.string() + ")");
        return {id, id, ct, mask};
    }
    for (const std::string& name : kCaseFolderMaskNames) {
        if (const auto mask = volumeNamed(byStem, name)) return {id, id, ct, *mask};
    }
    throw InputError(ct.string() + ": CT without a mask (expected liver" + fullExtension(ct) +
                     ", mask, segmentation or label(s) beside it, or name it with --mask-name)");
}

Dataset openCaseFolders(const fs::path& root, const DatasetOptions& options) {
    Dataset dataset{root, DatasetLayout::CasePairs, {}, {}};
    if (isCaseFolder(root)) {
        dataset.cases.push_back(caseFromFolder(root, options));
        return dataset;
    }
    for (const fs::path& entry : sortedEntries(root)) {
        if (isCaseFolder(entry)) {
            dataset.cases.push_back(caseFromFolder(entry, options));
        } else if (fs::is_directory(entry) && !isHidden(entry)) {
            dataset.notes.push_back(entry.filename().string() + "/ skipped (no ct.<ext> in it)");
        }
    }
    return dataset;
}

bool hasCaseFolders(const fs::path& root) {
    if (isCaseFolder(root)) return true;
    const auto entries = sortedEntries(root);
    return std::any_of(entries.begin(), entries.end(), isCaseFolder);
}

std::optional<std::string> pairedCaseStem(const std::string& stem) {
    for (const std::string& suffix : kPairMaskSuffixes) {
        if (endsWith(stem, suffix) && stem.size() > suffix.size()) return stem.substr(0, stem.size() - suffix.size());
    }
    return std::nullopt;
}

Dataset openFilePairs(const fs::path& root) {
    Dataset dataset{root, DatasetLayout::FilePairs, {}, {}};
    std::map<std::string, fs::path> cts, masks;
    for (const auto& [stem, path] : volumesByStem(root)) {
        if (const auto caseStem = pairedCaseStem(stem)) {
            if (!masks.emplace(*caseStem, path).second) {
                throw InputError(path.string() + ": second mask for case '" + *caseStem + "'");
            }
        } else {
            cts.emplace(stem, path);
        }
    }
    for (const auto& [stem, ct] : cts) {
        const auto mask = masks.find(stem);
        if (mask == masks.end()) {
            throw InputError(ct.string() + ": CT without a mask (expected " + stem + "_mask" + fullExtension(ct) + ")");
        }
        dataset.cases.push_back({stem, stem, ct, mask->second});
        masks.erase(mask);
    }
    if (!masks.empty()) throw InputError(masks.begin()->second.string() + ": mask without its CT");
    return dataset;
}

}  // namespace

std::string toString(DatasetLayout layout) {
    switch (layout) {
    case DatasetLayout::Decathlon: return "decathlon";
    case DatasetLayout::Slices2D: return "2d";
    case DatasetLayout::Lits: return "lits";
    case DatasetLayout::CasePairs: return "case-folders";
    case DatasetLayout::FilePairs: return "file-pairs";
    }
    return "unknown";
}

std::size_t Dataset::groupCount() const {
    std::set<std::string> groups;
    for (const auto& item : cases) groups.insert(item.group);
    return groups.size();
}

Dataset openDataset(const fs::path& folder, const DatasetOptions& options) {
    std::error_code error;
    if (!fs::exists(folder, error)) throw InputError(folder.string() + ": no such folder");
    if (!fs::is_directory(folder, error)) throw InputError(folder.string() + ": not a folder; a dataset is a folder");
    Dataset dataset;
    if (fs::is_directory(folder / "imagesTr")) {
        dataset = openDecathlon(folder);
    } else if (fs::is_directory(folder / "images") && fs::is_directory(folder / "masks")) {
        dataset = openSlices2D(folder);
    } else if (looksLikeLits(folder)) {
        dataset = openLits(folder);
    } else if (hasCaseFolders(folder)) {
        dataset = openCaseFolders(folder, options);
    } else {
        dataset = openFilePairs(folder);
        if (dataset.cases.empty()) throw InputError(folder.string() + ": no dataset found; " + kLayoutsExpected);
    }
    if (dataset.cases.empty()) {
        throw InputError(folder.string() + ": no cases in this " + toString(dataset.layout) + " dataset; " +
                         kLayoutsExpected);
    }
    sortCases(dataset);
    return dataset;
}

// --- liver labels ---------------------------------------------------------------------

LiverLabels::LiverLabels() {
    liver_.fill(true);
    liver_[0] = false;
}

LiverLabels::LiverLabels(const std::vector<int>& values) : isDefault_(false) {
    if (values.empty()) throw InputError("liver labels: give at least one label value");
    for (int value : values) {
        if (value < 1 || value > 255) {
            throw InputError("liver labels: " + std::to_string(value) + " is not a label value from 1 to 255");
        }
        liver_[std::size_t(value)] = true;
    }
}

LiverLabels LiverLabels::parse(const std::string& text) {
    std::vector<int> values;
    std::stringstream stream(text);
    std::string item;
    while (std::getline(stream, item, ',')) {
        const bool digits = !item.empty() && std::all_of(item.begin(), item.end(), [](char c) {
            return std::isdigit((unsigned char)c);
        });
        if (!digits || item.size() > 3) {
            throw InputError("liver labels '" + text + "': expected label values from 1 to 255 separated by commas, e.g. 1,2");
        }
        values.push_back(std::stoi(item));
    }
    if (values.empty() || (!text.empty() && text.back() == ',')) {
        throw InputError("liver labels '" + text + "': expected label values from 1 to 255 separated by commas, e.g. 1,2");
    }
    return LiverLabels(values);
}

std::string LiverLabels::describe() const {
    if (isDefault_) return "non-zero";
    std::string text;
    for (int value = 1; value < 256; ++value) {
        if (liver_[std::size_t(value)]) text += (text.empty() ? "" : ",") + std::to_string(value);
    }
    return text;
}

// --- splits ------------------------------------------------------------------------------

std::string volumeIdOfSliceName(const std::string& fileName) {
    std::string stem = fileName.substr(0, fileName.size() - fullExtension(fileName).size());
    for (const char* prefix : {"flipped_", "mirrored_"}) {
        if (stem.rfind(prefix, 0) == 0) {
            stem.erase(0, std::string(prefix).size());
            break;
        }
    }
    const auto underscore = stem.rfind('_');
    if (underscore == std::string::npos || underscore == 0 || underscore + 1 == stem.size()) return stem;
    const std::string slice = stem.substr(underscore + 1);
    const bool numericSlice = std::all_of(slice.begin(), slice.end(), [](char c) { return std::isdigit((unsigned char)c); });
    return numericSlice ? stem.substr(0, underscore) : stem;
}

DatasetSplit splitByGroup(const Dataset& dataset, double validationFraction, std::uint64_t seed) {
    if (!(validationFraction >= 0 && validationFraction < 1)) {
        throw InputError("validation fraction must be at least 0 and below 1");
    }
    std::vector<std::string> groups;
    for (const auto& item : dataset.cases) groups.push_back(item.group);
    std::sort(groups.begin(), groups.end(), naturalLess);
    groups.erase(std::unique(groups.begin(), groups.end()), groups.end());

    // Fisher-Yates with our own index draw: std::shuffle's sequence differs between
    // standard libraries, and a split must be the same everywhere.
    std::mt19937_64 random(seed);
    for (std::size_t i = groups.size(); i > 1; --i) std::swap(groups[i - 1], groups[random() % i]);

    std::size_t validationGroups = std::size_t(std::lround(validationFraction * double(groups.size())));
    if (validationFraction > 0 && validationGroups == 0) validationGroups = 1;
    if (groups.size() < 2) validationGroups = 0;
    validationGroups = std::min(validationGroups, groups.size() - std::min<std::size_t>(groups.size(), 1));
    const std::set<std::string> validation(groups.begin(), groups.begin() + std::ptrdiff_t(validationGroups));

    DatasetSplit split;
    split.seed = seed;
    split.validationFraction = validationFraction;
    for (std::size_t i = 0; i < dataset.cases.size(); ++i) {
        (validation.count(dataset.cases[i].group) ? split.validation : split.training).push_back(i);
    }
    return split;
}

}  // namespace liverseg::core
