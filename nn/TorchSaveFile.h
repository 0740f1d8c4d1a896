#pragma once
// Files in the format of Python's torch.save (a zip archive: data.pkl + data/<storage>).
//
// Reading has its own small unpickler: LibTorch 1.13's torch::pickle_load rejects what
// Python's torch.save writes for a state_dict (it turns collections.OrderedDict into None
// and does not know the SETITEM opcode). This one takes exactly the subset torch.save and
// torch::pickle_save write: None, bools, ints, floats, strings, tuples, lists, dicts,
// OrderedDicts and tensors (any dtype torch.save stores, views kept as views); any other
// object fails with a core::InputError naming it. Nothing is executed.
#include <ATen/core/ivalue.h>

#include <filesystem>

namespace liverseg::nn {

// The file's object as an IValue (dicts and OrderedDicts -> GenericDict in file order,
// tuples -> Tuple, lists -> GenericList, tensors on the CPU). Throws core::InputError
// "<path>: ..." for a missing, corrupt or truncated file or an unsupported object.
c10::IValue readTorchSaveFile(const std::filesystem::path& path);

// Writes `value` (tensors moved to the CPU by the caller) with torch::pickle_save,
// atomically; Python's torch.load reads it.
void writeTorchSaveFile(const std::filesystem::path& path, const c10::IValue& value);

}  // namespace liverseg::nn
