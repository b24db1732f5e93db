// kiln/core/status.h — errors as values.
//
// Every public function that can fail on untrusted input (model files, YAML, CSV, network
// frames, database rows) returns a Status or a Result<T>. The message says what was wrong,
// where, and what was expected, so a user can act on it. The OK status carries no message and
// costs nothing to create or copy (no allocation), so it may be returned from hot paths.
//
//   kiln::Result<int> parse_port(std::string_view s) {
//     int v = 0;
//     if (!parse_int(s, &v)) return kiln::Status::invalid("port '", s, "' is not a number");
//     return v;
//   }
//   KILN_ASSIGN_OR_RETURN(int port, parse_port(text));   // propagates the error
//   KILN_RETURN_IF_ERROR(server.listen(port));
#pragma once

#include <cassert>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace kiln {

enum class StatusCode : int {
  kOk = 0,
  kInvalidArgument,  // bad input: a file, a value, a shape the caller supplied
  kNotFound,         // a path, a name or a key that does not exist
  kUnsupported,      // well-formed input that Kiln does not implement (yet)
  kNeedsValue,       // a shape depends on the value of an input: bind that input at compile time
  kOutOfRange,       // data-dependent index outside its bounds at run time
  kIo,               // the operating system refused (open, read, write)
  kInternal,         // a broken invariant of Kiln itself: a bug
};

const char* status_code_name(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return Status(); }
  template <typename... Args> static Status invalid(Args&&... a) { return make(StatusCode::kInvalidArgument, std::forward<Args>(a)...); }
  template <typename... Args> static Status not_found(Args&&... a) { return make(StatusCode::kNotFound, std::forward<Args>(a)...); }
  template <typename... Args> static Status unsupported(Args&&... a) { return make(StatusCode::kUnsupported, std::forward<Args>(a)...); }
  template <typename... Args> static Status needs_value(Args&&... a) { return make(StatusCode::kNeedsValue, std::forward<Args>(a)...); }
  template <typename... Args> static Status out_of_range(Args&&... a) { return make(StatusCode::kOutOfRange, std::forward<Args>(a)...); }
  template <typename... Args> static Status io(Args&&... a) { return make(StatusCode::kIo, std::forward<Args>(a)...); }
  template <typename... Args> static Status internal(Args&&... a) { return make(StatusCode::kInternal, std::forward<Args>(a)...); }

  bool is_ok() const { return code_ == StatusCode::kOk; }
  explicit operator bool() const { return is_ok(); }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // Returns a copy whose message is "<context>: <message>", for adding where an error happened.
  Status with_context(std::string_view context) const {
    if (is_ok()) return *this;
    std::string m(context);
    m += ": ";
    m += message_;
    return Status(code_, std::move(m));
  }

  // "unsupported: <message>"; "ok" for the OK status.
  std::string to_string() const;

 private:
  template <typename... Args>
  static Status make(StatusCode code, Args&&... args) {
    std::ostringstream os;
    (os << ... << std::forward<Args>(args));
    return Status(code, os.str());
  }

  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// A value or the Status that explains why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}                  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {            // NOLINT: implicit by design
    assert(!std::get<Status>(v_).is_ok() && "Result built from an OK status");
  }

  bool is_ok() const { return v_.index() == 0; }
  explicit operator bool() const { return is_ok(); }
  const Status& status() const {
    static const Status kOk;
    return is_ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace kiln

#define KILN_CONCAT_INNER_(a, b) a##b
#define KILN_CONCAT_(a, b) KILN_CONCAT_INNER_(a, b)

#define KILN_RETURN_IF_ERROR(expr)              \
  do {                                          \
    ::kiln::Status kiln_status_ = (expr);       \
    if (!kiln_status_.is_ok()) return kiln_status_; \
  } while (0)

#define KILN_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.is_ok()) return tmp.status();            \
  lhs = std::move(tmp).value()

#define KILN_ASSIGN_OR_RETURN(lhs, expr) \
  KILN_ASSIGN_OR_RETURN_IMPL_(KILN_CONCAT_(kiln_result_, __LINE__), lhs, expr)
