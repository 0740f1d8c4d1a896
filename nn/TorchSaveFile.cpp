#include "nn/TorchSaveFile.h"

#include "core/AtomicFile.h"
#include "core/Errors.h"

#include <ATen/Functions.h>
#include <caffe2/serialize/inline_container.h>
#include <caffe2/serialize/read_adapter_interface.h>
#include <torch/serialize.h>
#include <zlib.h>

#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <unordered_map>

namespace liverseg::nn {
namespace {

// The file is not what it should be; the message says what, the caller adds the path.
class Malformed : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// One unpickled object. Containers are shared so that memo references and later
// APPEND/SETITEM opcodes see the same object, as in Python.
struct Value;
using ValuePtr = std::shared_ptr<Value>;
struct Value {
    enum class Kind { None, Bool, Int, Float, String, Tuple, List, Dict, Global, Storage, Tensor };
    Kind kind = Kind::None;
    bool boolean = false;
    std::int64_t integer = 0;
    double real = 0.0;
    std::string text;  // String, or "module.name" of a Global
    std::vector<ValuePtr> items;                           // Tuple, List
    std::vector<std::pair<ValuePtr, ValuePtr>> entries;    // Dict, in insertion order
    at::Tensor tensor;                                     // Storage (1-D, the storage's dtype), Tensor

    static ValuePtr make(Kind kind) {
        auto value = std::make_shared<Value>();
        value->kind = kind;
        return value;
    }
};

const std::map<std::string, at::ScalarType>& storageTypes() {
    static const std::map<std::string, at::ScalarType> types = {
        {"torch.FloatStorage", at::kFloat},   {"torch.DoubleStorage", at::kDouble},
        {"torch.HalfStorage", at::kHalf},     {"torch.BFloat16Storage", at::kBFloat16},
        {"torch.LongStorage", at::kLong},     {"torch.IntStorage", at::kInt},
        {"torch.ShortStorage", at::kShort},   {"torch.CharStorage", at::kChar},
        {"torch.ByteStorage", at::kByte},     {"torch.BoolStorage", at::kBool},
    };
    return types;
}

class Unpickler {
public:
    Unpickler(const char* data, std::size_t size, caffe2::serialize::PyTorchStreamReader& archive)
        : data_(data), size_(size), archive_(archive) {}

    ValuePtr run() {
        for (;;) {
            const std::size_t at = position_;
            const std::uint8_t opcode = byte();
            if (opcode == '.') {
                if (stack_.size() != 1) throw Malformed("pickle ends with " + std::to_string(stack_.size()) + " objects");
                return stack_.back();
            }
            execute(opcode, at);
        }
    }

private:
    void execute(std::uint8_t opcode, std::size_t at) {
        switch (opcode) {
            case 0x80: byte(); break;                 // PROTO
            case 0x95: unsigned_(8); break;           // FRAME (a hint only)
            case '(': marks_.push_back(stack_.size()); break;
            case 'N': push(Value::make(Value::Kind::None)); break;
            case 0x88: push(boolean(true)); break;
            case 0x89: push(boolean(false)); break;
            case 'J': push(integer(std::int32_t(std::uint32_t(unsigned_(4))))); break;
            case 'K': push(integer(byte())); break;
            case 'M': push(integer(std::int64_t(unsigned_(2)))); break;
            case 0x8a: push(integer(longInteger(byte()))); break;
            case 0x8b: push(integer(longInteger(unsigned_(4)))); break;
            case 'G': push(real()); break;
            case 'X': push(string(unsigned_(4))); break;
            case 0x8c: push(string(byte())); break;
            case 0x8d: push(string(unsigned_(8))); break;
            case 'U': case 'C': push(string(byte())); break;
            case 'T': case 'B': push(string(unsigned_(4))); break;
            case ')': push(Value::make(Value::Kind::Tuple)); break;
            case 't': push(sequence(Value::Kind::Tuple, popToMark())); break;
            case 0x85: case 0x86: case 0x87: push(sequence(Value::Kind::Tuple, popCount(opcode - 0x84))); break;
            case ']': push(Value::make(Value::Kind::List)); break;
            case 'l': push(sequence(Value::Kind::List, popToMark())); break;
            case 'a': { auto item = pop(); container(Value::Kind::List).items.push_back(item); break; }
            case 'e': { auto items = popToMark(); auto& list = container(Value::Kind::List).items; list.insert(list.end(), items.begin(), items.end()); break; }
            case '}': push(Value::make(Value::Kind::Dict)); break;
            case 'd': { auto dict = Value::make(Value::Kind::Dict); setItems(*dict, popToMark()); push(dict); break; }
            case 's': { auto value = pop(); auto key = pop(); container(Value::Kind::Dict).entries.emplace_back(key, value); break; }
            case 'u': { auto items = popToMark(); setItems(container(Value::Kind::Dict), items); break; }
            case 'c': { std::string module = line(); push(global(module + "." + line())); break; }
            case 0x93: { auto name = pop(); auto module = pop(); push(global(text(module) + "." + text(name))); break; }
            case 'R': case 0x81: { auto arguments = pop(); auto callable = pop(); push(reduce(*callable, *arguments)); break; }
            case 'b': build(); break;
            case 'q': memo_[byte()] = top(); break;
            case 'r': memo_[unsigned_(4)] = top(); break;
            case 0x94: memo_[memo_.size()] = top(); break;
            case 'h': push(memo(byte())); break;
            case 'j': push(memo(unsigned_(4))); break;
            case 'Q': { auto id = pop(); push(persistentLoad(*id)); break; }
            case '0': pop(); break;
            case '1': popToMark(); break;
            case '2': push(top()); break;
            default: {
                std::ostringstream out;
                out << "unsupported pickle opcode 0x" << std::hex << int(opcode) << std::dec << " at byte " << at;
                throw Malformed(out.str());
            }
        }
    }

    // --- reading bytes
    void need(std::uint64_t count) const {
        if (count > size_ - position_) throw Malformed("pickle data ends early (truncated?)");
    }
    std::uint8_t byte() {
        need(1);
        return std::uint8_t(data_[position_++]);
    }
    std::uint64_t unsigned_(int bytes) {
        need(bytes);
        std::uint64_t value = 0;
        for (int i = 0; i < bytes; ++i) value |= std::uint64_t(std::uint8_t(data_[position_ + i])) << (8 * i);
        position_ += bytes;
        return value;
    }
    std::int64_t longInteger(std::uint64_t bytes) {
        if (bytes > 8) throw Malformed("an integer of " + std::to_string(bytes) + " bytes does not fit 64 bits");
        if (bytes == 0) return 0;
        std::uint64_t value = unsigned_(int(bytes));
        if (bytes < 8 && (value >> (8 * bytes - 1)) & 1) value |= ~std::uint64_t(0) << (8 * bytes);  // sign-extend
        return std::int64_t(value);
    }
    std::string line() {
        const void* end = std::memchr(data_ + position_, '\n', size_ - position_);
        if (!end) throw Malformed("pickle data ends early (truncated?)");
        std::string text(data_ + position_, static_cast<const char*>(end));
        position_ += text.size() + 1;
        return text;
    }

    // --- values
    static ValuePtr boolean(bool b) {
        auto value = Value::make(Value::Kind::Bool);
        value->boolean = b;
        return value;
    }
    static ValuePtr integer(std::int64_t i) {
        auto value = Value::make(Value::Kind::Int);
        value->integer = i;
        return value;
    }
    ValuePtr real() {
        const std::uint64_t bigEndian = unsigned_(8);
        std::uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits |= ((bigEndian >> (8 * i)) & 0xff) << (8 * (7 - i));
        auto value = Value::make(Value::Kind::Float);
        std::memcpy(&value->real, &bits, sizeof bits);
        return value;
    }
    ValuePtr string(std::uint64_t length) {
        need(length);
        auto value = Value::make(Value::Kind::String);
        value->text.assign(data_ + position_, length);
        position_ += length;
        return value;
    }
    static ValuePtr global(const std::string& name) {
        auto value = Value::make(Value::Kind::Global);
        value->text = name;
        return value;
    }
    static ValuePtr sequence(Value::Kind kind, std::vector<ValuePtr> items) {
        auto value = Value::make(kind);
        value->items = std::move(items);
        return value;
    }
    static const std::string& text(const ValuePtr& value) {
        if (value->kind != Value::Kind::String) throw Malformed("a global's name is not a string");
        return value->text;
    }
    static void setItems(Value& dict, const std::vector<ValuePtr>& items) {
        if (items.size() % 2 != 0) throw Malformed("a dict with a key and no value");
        for (std::size_t i = 0; i < items.size(); i += 2) dict.entries.emplace_back(items[i], items[i + 1]);
    }

    // --- the stack
    void push(ValuePtr value) { stack_.push_back(std::move(value)); }
    const ValuePtr& top() const {
        if (stack_.empty() || (!marks_.empty() && marks_.back() == stack_.size())) throw Malformed("pickle stack underflow");
        return stack_.back();
    }
    ValuePtr pop() {
        ValuePtr value = top();
        stack_.pop_back();
        return value;
    }
    std::vector<ValuePtr> popCount(std::size_t count) {
        std::vector<ValuePtr> items(count);
        for (std::size_t i = count; i-- > 0;) items[i] = pop();
        return items;
    }
    std::vector<ValuePtr> popToMark() {
        if (marks_.empty()) throw Malformed("pickle has no mark where one is needed");
        const std::size_t mark = marks_.back();
        marks_.pop_back();
        std::vector<ValuePtr> items(stack_.begin() + std::ptrdiff_t(mark), stack_.end());
        stack_.resize(mark);
        return items;
    }
    Value& container(Value::Kind kind) {
        Value& value = *top();
        if (value.kind != kind) throw Malformed(kind == Value::Kind::List ? "APPEND to something not a list"
                                                                          : "SETITEM on something not a dict");
        return value;
    }
    ValuePtr memo(std::uint64_t index) const {
        const auto found = memo_.find(index);
        if (found == memo_.end()) throw Malformed("pickle refers to memo entry " + std::to_string(index) + " it never stored");
        return found->second;
    }

    // --- objects
    ValuePtr reduce(const Value& callable, const Value& arguments) {
        if (callable.kind != Value::Kind::Global || arguments.kind != Value::Kind::Tuple) {
            throw Malformed("pickle calls something that is not a known global");
        }
        const std::string& name = callable.text;
        const auto& args = arguments.items;
        if (name == "collections.OrderedDict" && args.empty()) return Value::make(Value::Kind::Dict);
        if ((name == "torch._utils._rebuild_tensor_v2" && args.size() >= 4) ||
            (name == "torch._utils._rebuild_tensor" && args.size() == 4)) {
            return rebuildTensor(*args[0], *args[1], *args[2], *args[3]);
        }
        if (name.rfind("torch._utils._rebuild_parameter", 0) == 0 && !args.empty() &&
            args[0]->kind == Value::Kind::Tensor) {
            return args[0];
        }
        if ((name == "torch.jit._pickle.restore_type_tag" || name.rfind("torch.jit._pickle.build_", 0) == 0) &&
            !args.empty()) {
            return args[0];
        }
        throw Malformed("holds a Python object of type " + name + ", which liverseg does not read");
    }

    void build() {
        pop();  // state: an OrderedDict's _metadata (the BatchNorm versions); nothing we need
        const Value& object = *top();
        if (object.kind != Value::Kind::Dict && object.kind != Value::Kind::Tensor) {
            throw Malformed("pickle sets the state of an object liverseg does not read");
        }
    }

    ValuePtr persistentLoad(const Value& id) {
        // ('storage', torch.<Type>Storage, key, location, numel), as torch.save writes it.
        const auto& f = id.items;
        if (id.kind != Value::Kind::Tuple || f.size() != 5 || f[0]->kind != Value::Kind::String ||
            f[0]->text != "storage" || f[1]->kind != Value::Kind::Global || f[2]->kind != Value::Kind::String ||
            f[4]->kind != Value::Kind::Int || f[4]->integer < 0) {
            throw Malformed("pickle refers to external data in a form liverseg does not read");
        }
        const auto type = storageTypes().find(f[1]->text);
        if (type == storageTypes().end()) throw Malformed("holds a tensor stored as " + f[1]->text + ", which liverseg does not read");
        const std::string& key = f[2]->text;
        auto storage = Value::make(Value::Kind::Storage);
        const auto cached = storages_.find(key);
        if (cached != storages_.end()) {
            storage->tensor = cached->second;
            return storage;
        }
        const std::string record = "data/" + key;
        if (!archive_.hasRecord(record)) throw Malformed("the tensor data " + record + " is missing (truncated?)");
        auto [bytes, size] = archive_.getRecord(record);
        const std::int64_t numel = f[4]->integer;
        const std::size_t expected = std::size_t(numel) * c10::elementSize(type->second);
        if (size != expected) {
            throw Malformed("the tensor data " + record + " holds " + std::to_string(size) + " bytes, not the " +
                            std::to_string(expected) + " its header promises");
        }
        at::Tensor tensor = at::empty({numel}, at::TensorOptions().dtype(type->second));
        if (size > 0) std::memcpy(tensor.data_ptr(), bytes.get(), size);
        storages_.emplace(key, tensor);
        storage->tensor = tensor;
        return storage;
    }

    static std::vector<std::int64_t> integers(const Value& tuple, const char* what) {
        if (tuple.kind != Value::Kind::Tuple) throw Malformed(std::string("a tensor's ") + what + " is not a tuple");
        std::vector<std::int64_t> values;
        for (const auto& item : tuple.items) {
            if (item->kind != Value::Kind::Int || item->integer < 0) {
                throw Malformed(std::string("a tensor's ") + what + " holds something other than a count");
            }
            values.push_back(item->integer);
        }
        return values;
    }

    static ValuePtr rebuildTensor(const Value& storage, const Value& offset, const Value& sizeTuple,
                                  const Value& strideTuple) {
        if (storage.kind != Value::Kind::Storage || offset.kind != Value::Kind::Int || offset.integer < 0) {
            throw Malformed("a tensor without proper storage");
        }
        const auto sizes = integers(sizeTuple, "size");
        const auto strides = integers(strideTuple, "stride");
        if (sizes.size() != strides.size()) throw Malformed("a tensor whose size and stride disagree");
        // The last element addressed must lie inside the storage.
        std::int64_t last = offset.integer;
        bool empty = false;
        for (std::size_t i = 0; i < sizes.size(); ++i) {
            if (sizes[i] == 0) empty = true;
            last += (sizes[i] - 1) * strides[i];
        }
        const std::int64_t available = storage.tensor.numel();
        if (!empty && last >= available) throw Malformed("a tensor reaches past the end of its storage");
        if (empty && offset.integer > available) throw Malformed("a tensor starts past the end of its storage");
        auto tensor = Value::make(Value::Kind::Tensor);
        tensor->tensor = storage.tensor.as_strided(sizes, strides, offset.integer);
        return tensor;
    }

    const char* data_;
    std::size_t size_;
    std::size_t position_ = 0;
    caffe2::serialize::PyTorchStreamReader& archive_;
    std::vector<ValuePtr> stack_;
    std::vector<std::size_t> marks_;
    std::unordered_map<std::uint64_t, ValuePtr> memo_;
    std::map<std::string, at::Tensor> storages_;
};

constexpr int kMaximumNesting = 256;

c10::IValue toIValue(const Value& value, int depth) {
    if (depth > kMaximumNesting) throw Malformed("objects nested deeper than " + std::to_string(kMaximumNesting));
    switch (value.kind) {
        case Value::Kind::None: return c10::IValue();
        case Value::Kind::Bool: return c10::IValue(value.boolean);
        case Value::Kind::Int: return c10::IValue(value.integer);
        case Value::Kind::Float: return c10::IValue(value.real);
        case Value::Kind::String: return c10::IValue(value.text);
        case Value::Kind::Tensor: return c10::IValue(value.tensor);
        case Value::Kind::Tuple: {
            std::vector<c10::IValue> items;
            for (const auto& item : value.items) items.push_back(toIValue(*item, depth + 1));
            return c10::ivalue::Tuple::create(std::move(items));
        }
        case Value::Kind::List: {
            c10::impl::GenericList list(c10::AnyType::get());
            for (const auto& item : value.items) list.push_back(toIValue(*item, depth + 1));
            return list;
        }
        case Value::Kind::Dict: {
            bool stringKeys = true, intKeys = true;
            for (const auto& [key, item] : value.entries) {
                stringKeys = stringKeys && key->kind == Value::Kind::String;
                intKeys = intKeys && key->kind == Value::Kind::Int;
            }
            if (!stringKeys && !intKeys) throw Malformed("holds a dict whose keys are neither all strings nor all integers");
            const c10::TypePtr keyType =
                stringKeys ? c10::TypePtr(c10::StringType::get()) : c10::TypePtr(c10::IntType::get());
            c10::impl::GenericDict dict(keyType, c10::AnyType::get());
            for (const auto& [key, item] : value.entries) {
                dict.insert_or_assign(toIValue(*key, depth + 1), toIValue(*item, depth + 1));
            }
            return dict;
        }
        case Value::Kind::Global: throw Malformed("holds a bare Python name (" + value.text + ")");
        case Value::Kind::Storage: throw Malformed("holds a bare tensor storage");
    }
    throw Malformed("holds an unknown object");
}

std::string firstLine(const std::string& text) { return text.substr(0, text.find('\n')); }

std::string readWholeFile(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw core::InputError(path.string() + ": cannot be opened for reading");
    in.seekg(0, std::ios::end);
    const std::streamoff size = in.tellg();
    in.seekg(0, std::ios::beg);
    std::string bytes(std::size_t(std::max<std::streamoff>(size, 0)), '\0');
    in.read(bytes.data(), std::streamsize(bytes.size()));
    if (!in) throw core::InputError(path.string() + ": cannot be read");
    return bytes;
}

// The zip reader inside LibTorch skips the CRC checks, so a flipped bit in the weights
// would load silently. Check every stored (uncompressed) record against the CRC-32 in the
// zip's central directory, as torch.save and torch::pickle_save write them.
class ZipChecks {
public:
    explicit ZipChecks(const std::string& bytes) : bytes_(bytes) {}

    void verify() const {
        const std::size_t end = endOfCentralDirectory();
        const std::uint32_t entries = u16(end + 10);
        const std::uint32_t directorySize = u32(end + 12);
        const std::uint32_t directoryOffset = u32(end + 16);
        if (entries == 0xffff || directoryOffset == 0xffffffff) return;  // zip64 (> 4 GB): left to the reader
        if (std::uint64_t(directoryOffset) + directorySize > end) throw Malformed("its zip directory is damaged");
        std::size_t at = directoryOffset;
        for (std::uint32_t i = 0; i < entries; ++i) at = verifyEntry(at);
    }

private:
    std::uint32_t u16(std::size_t at) const { return std::uint32_t(byte(at)) | std::uint32_t(byte(at + 1)) << 8; }
    std::uint32_t u32(std::size_t at) const { return u16(at) | u16(at + 2) << 16; }
    std::uint8_t byte(std::size_t at) const {
        if (at >= bytes_.size()) throw Malformed("its zip structure points past the end of the file (truncated?)");
        return std::uint8_t(bytes_[at]);
    }

    std::size_t endOfCentralDirectory() const {
        constexpr std::size_t kRecordSize = 22, kMaximumComment = 65535;
        if (bytes_.size() >= kRecordSize) {
            const std::size_t lowest = bytes_.size() > kRecordSize + kMaximumComment ? bytes_.size() - kRecordSize - kMaximumComment : 0;
            for (std::size_t at = bytes_.size() - kRecordSize + 1; at-- > lowest;) {
                if (u32(at) == 0x06054b50) return at;
            }
        }
        throw Malformed("not a readable torch.save file (corrupt or truncated?): the zip directory is missing");
    }

    // Checks one central-directory entry's data; returns where the next entry starts.
    std::size_t verifyEntry(std::size_t at) const {
        if (u32(at) != 0x02014b50) throw Malformed("its zip directory is damaged");
        const std::uint32_t method = u16(at + 10), crc = u32(at + 16), size = u32(at + 24);
        const std::uint32_t nameLength = u16(at + 28), extraLength = u16(at + 30), commentLength = u16(at + 32);
        const std::uint32_t local = u32(at + 42);
        if (at + 46 + nameLength > bytes_.size()) throw Malformed("its zip directory is damaged");
        const std::string name = bytes_.substr(at + 46, nameLength);
        if (method == 0 && size != 0xffffffff && local != 0xffffffff) {
            if (u32(local) != 0x04034b50) throw Malformed("the zip entry " + name + " is damaged");
            const std::size_t data = std::size_t(local) + 30 + u16(local + 26) + u16(local + 28);
            if (data + size > bytes_.size()) throw Malformed("the zip entry " + name + " is cut short (truncated?)");
            const auto* start = reinterpret_cast<const Bytef*>(bytes_.data() + data);
            if (std::uint32_t(crc32(crc32(0L, Z_NULL, 0), start, size)) != crc) {
                throw Malformed("the zip entry " + name + " fails its checksum: the file is corrupt");
            }
        }
        return at + 46 + nameLength + extraLength + commentLength;
    }

    const std::string& bytes_;
};

// LibTorch's zip reader over bytes in memory, never reading past their end.
class BoundedMemoryAdapter : public caffe2::serialize::ReadAdapterInterface {
public:
    explicit BoundedMemoryAdapter(const std::string& bytes) : bytes_(bytes) {}
    std::size_t size() const override { return bytes_.size(); }
    std::size_t read(std::uint64_t position, void* buffer, std::size_t count, const char* = "") const override {
        if (position >= bytes_.size()) return 0;
        const std::size_t available = std::min<std::size_t>(count, bytes_.size() - position);
        std::memcpy(buffer, bytes_.data() + position, available);
        return available;
    }

private:
    const std::string& bytes_;
};

}  // namespace

c10::IValue readTorchSaveFile(const std::filesystem::path& path) {
    const std::string name = path.string();
    std::error_code error;
    if (!std::filesystem::exists(path, error)) throw core::InputError(name + ": no such file");
    if (std::filesystem::is_directory(path, error)) throw core::InputError(name + ": is a folder, not a torch.save file");
    const std::string bytes = readWholeFile(path);
    if (bytes.rfind("PK", 0) != 0) {
        if (!bytes.empty() && std::uint8_t(bytes[0]) == 0x80) {
            throw core::InputError(name + ": written by torch.save in the legacy (non-zip) format; re-save it with a "
                                          "current torch.save (without _use_new_zipfile_serialization=False)");
        }
        throw core::InputError(name + ": not a torch.save file (not a zip archive)");
    }
    try {
        ZipChecks(bytes).verify();
        caffe2::serialize::PyTorchStreamReader archive(std::make_shared<BoundedMemoryAdapter>(bytes));
        if (!archive.hasRecord("data.pkl")) throw Malformed("a zip archive without data.pkl, not a torch.save file");
        auto [pickle, size] = archive.getRecord("data.pkl");
        Unpickler unpickler(static_cast<const char*>(pickle.get()), size, archive);
        return toIValue(*unpickler.run(), 0);
    } catch (const Malformed& malformed) {
        throw core::InputError(name + ": " + malformed.what());
    } catch (const c10::Error& failure) {
        throw core::InputError(name + ": not a readable torch.save file (corrupt or truncated?): " +
                               firstLine(failure.what_without_backtrace()));
    }
}

void writeTorchSaveFile(const std::filesystem::path& path, const c10::IValue& value) {
    const std::vector<char> bytes = torch::pickle_save(value);
    core::writeAtomically(path, [&](const std::filesystem::path& temporary) {
        std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
        out.write(bytes.data(), std::streamsize(bytes.size()));
        out.close();
        if (!out) throw core::InputError(path.string() + ": cannot write (disk full or no permission?)");
    });
}

}  // namespace liverseg::nn
