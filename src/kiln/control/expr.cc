#include "kiln/control/expr.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>

namespace kiln::control {

class ExprParser {
 public:
  ExprParser(std::string_view s, const Expr::Resolver& r, Expr& out) : s_(s), resolve_(r), out_(out) {}

  Status parse() {
    KILN_RETURN_IF_ERROR(ternary());
    skip();
    if (pos_ != s_.size()) return err("unexpected '" + std::string(1, s_[pos_]) + "'");
    return Status::ok();
  }
  size_t pos() const { return err_pos_; }

 private:
  using Op = Expr::Op;

  Status err(const std::string& msg) {
    err_pos_ = pos_;
    return Status::invalid("at character ", pos_ + 1, ": ", msg);
  }
  void skip() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  bool eat(std::string_view tok) {
    skip();
    if (s_.substr(pos_, tok.size()) == tok) {
      pos_ += tok.size();
      return true;
    }
    return false;
  }
  // Stack depth tracking: every instruction's net effect is known, so the maximum depth of the
  // program is computed while emitting it.
  Status emit(Op op, int pops, int pushes, int index = 0, double k = 0) {
    depth_ = depth_ - pops + pushes;
    if (depth_ > Expr::kMaxStack) return err("expression too complex (more than 64 pending values)");
    out_.code_.push_back({op, index, k});
    return Status::ok();
  }
  Status enter() {
    if (++nest_ > 48) return err("expression nested too deeply");
    return Status::ok();
  }

  Status ternary() {
    KILN_RETURN_IF_ERROR(enter());
    KILN_RETURN_IF_ERROR(logic_or());
    if (eat("?")) {
      KILN_RETURN_IF_ERROR(ternary());
      if (!eat(":")) return err("expected ':' in 'condition ? a : b'");
      KILN_RETURN_IF_ERROR(ternary());
      KILN_RETURN_IF_ERROR(emit(Op::kSelect, 3, 1));
    }
    --nest_;
    return Status::ok();
  }
  Status logic_or() {
    KILN_RETURN_IF_ERROR(logic_and());
    while (eat("||")) {
      KILN_RETURN_IF_ERROR(logic_and());
      KILN_RETURN_IF_ERROR(emit(Op::kOr, 2, 1));
    }
    return Status::ok();
  }
  Status logic_and() {
    KILN_RETURN_IF_ERROR(compare());
    while (eat("&&")) {
      KILN_RETURN_IF_ERROR(compare());
      KILN_RETURN_IF_ERROR(emit(Op::kAnd, 2, 1));
    }
    return Status::ok();
  }
  Status compare() {
    KILN_RETURN_IF_ERROR(additive());
    for (;;) {
      Op op;
      if (eat("<=")) op = Op::kLe;
      else if (eat(">=")) op = Op::kGe;
      else if (eat("==")) op = Op::kEq;
      else if (eat("!=")) op = Op::kNe;
      else if (eat("<")) op = Op::kLt;
      else if (eat(">")) op = Op::kGt;
      else return Status::ok();
      KILN_RETURN_IF_ERROR(additive());
      KILN_RETURN_IF_ERROR(emit(op, 2, 1));
    }
  }
  Status additive() {
    KILN_RETURN_IF_ERROR(multiplicative());
    for (;;) {
      Op op;
      if (eat("+")) op = Op::kAdd;
      else if (eat("-")) op = Op::kSub;
      else return Status::ok();
      KILN_RETURN_IF_ERROR(multiplicative());
      KILN_RETURN_IF_ERROR(emit(op, 2, 1));
    }
  }
  Status multiplicative() {
    KILN_RETURN_IF_ERROR(unary());
    for (;;) {
      Op op;
      if (eat("*")) op = Op::kMul;
      else if (eat("/")) op = Op::kDiv;
      else if (eat("%")) op = Op::kMod;
      else return Status::ok();
      KILN_RETURN_IF_ERROR(unary());
      KILN_RETURN_IF_ERROR(emit(op, 2, 1));
    }
  }
  Status unary() {
    KILN_RETURN_IF_ERROR(enter());
    skip();
    if (pos_ < s_.size() && s_[pos_] == '!' && s_.substr(pos_, 2) != "!=") {
      ++pos_;
      KILN_RETURN_IF_ERROR(unary());
      KILN_RETURN_IF_ERROR(emit(Op::kNot, 1, 1));
    } else if (eat("-")) {
      KILN_RETURN_IF_ERROR(unary());
      KILN_RETURN_IF_ERROR(emit(Op::kNeg, 1, 1));
    } else if (eat("+")) {
      KILN_RETURN_IF_ERROR(unary());
    } else {
      KILN_RETURN_IF_ERROR(power());
    }
    --nest_;
    return Status::ok();
  }
  Status power() {
    KILN_RETURN_IF_ERROR(primary());
    if (eat("^")) {
      KILN_RETURN_IF_ERROR(unary());
      KILN_RETURN_IF_ERROR(emit(Op::kPow, 2, 1));
    }
    return Status::ok();
  }
  Status primary() {
    skip();
    if (pos_ >= s_.size()) return err("expected a value, found the end of the expression");
    char c = s_[pos_];
    if (c == '(') {
      ++pos_;
      KILN_RETURN_IF_ERROR(ternary());
      if (!eat(")")) return err("expected ')'");
      return Status::ok();
    }
    if (std::isdigit(static_cast<unsigned char>(c)) || c == '.') {
      size_t start = pos_;
      while (pos_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '.' ||
                                  ((s_[pos_] == '-' || s_[pos_] == '+') && (s_[pos_ - 1] == 'e' || s_[pos_ - 1] == 'E'))))
        ++pos_;
      std::string num(s_.substr(start, pos_ - start));
      char* end = nullptr;
      double v = std::strtod(num.c_str(), &end);
      if (end != num.c_str() + num.size() || !std::isfinite(v)) {
        pos_ = start;
        return err("'" + num + "' is not a number");
      }
      return emit(Op::kConst, 0, 1, 0, v);
    }
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t start = pos_;
      while (pos_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '_' || s_[pos_] == '.')) ++pos_;
      std::string_view name = s_.substr(start, pos_ - start);
      if (name == "true") return emit(Op::kConst, 0, 1, 0, 1);
      if (name == "false") return emit(Op::kConst, 0, 1, 0, 0);
      skip();
      if (pos_ < s_.size() && s_[pos_] == '(') return call(name, start);
      int slot = resolve_ ? resolve_(name) : -1;
      if (slot < 0) {
        pos_ = start;
        return err("unknown name '" + std::string(name.substr(0, 64)) + "'");
      }
      if (slot >= Expr::kExtraBase) return emit(Op::kExtra, 0, 1, slot - Expr::kExtraBase);
      if (std::find(out_.vars_.begin(), out_.vars_.end(), slot) == out_.vars_.end()) out_.vars_.push_back(slot);
      return emit(Op::kVar, 0, 1, slot);
    }
    return err("unexpected '" + std::string(1, c) + "'");
  }
  Status call(std::string_view name, size_t start) {
    struct Fn {
      const char* name;
      Op op;
      int args;
    };
    static const Fn kFns[] = {{"abs", Op::kAbs, 1},     {"min", Op::kMin, 2},     {"max", Op::kMax, 2},
                              {"clamp", Op::kClamp, 3}, {"sqrt", Op::kSqrt, 1},   {"exp", Op::kExp, 1},
                              {"log", Op::kLog, 1},     {"log10", Op::kLog10, 1}, {"sin", Op::kSin, 1},
                              {"cos", Op::kCos, 1},     {"tan", Op::kTan, 1},     {"floor", Op::kFloor, 1},
                              {"ceil", Op::kCeil, 1},   {"round", Op::kRound, 1}, {"isnan", Op::kIsnan, 1},
                              {"sign", Op::kSign, 1}};
    const Fn* fn = nullptr;
    for (const Fn& f : kFns)
      if (name == f.name) fn = &f;
    if (fn == nullptr) {
      pos_ = start;
      return err("unknown function '" + std::string(name.substr(0, 64)) + "'");
    }
    eat("(");
    int n = 0;
    skip();
    if (!eat(")")) {
      for (;;) {
        KILN_RETURN_IF_ERROR(ternary());
        ++n;
        if (eat(")")) break;
        if (!eat(",")) return err("expected ',' or ')' in the arguments of " + std::string(fn->name));
      }
    }
    if (n != fn->args) {
      pos_ = start;
      return err(std::string(fn->name) + " takes " + std::to_string(fn->args) + " argument(s), got " + std::to_string(n));
    }
    return emit(fn->op, n, 1);
  }

  std::string_view s_;
  const Expr::Resolver& resolve_;
  Expr& out_;
  size_t pos_ = 0, err_pos_ = 0;
  int depth_ = 0, nest_ = 0;
};

Result<Expr> Expr::compile(std::string_view text, const Resolver& resolve, int* error_pos) {
  Expr e;
  if (text.size() > 4096) {
    if (error_pos) *error_pos = 0;
    return Status::invalid("expression longer than 4096 characters");
  }
  e.text_ = std::string(text);
  ExprParser p(text, resolve, e);
  Status s = p.parse();
  if (!s.is_ok()) {
    if (error_pos) *error_pos = static_cast<int>(p.pos());
    return s;
  }
  if (e.code_.empty()) {
    if (error_pos) *error_pos = 0;
    return Status::invalid("empty expression");
  }
  return e;
}

Expr Expr::constant(double v) {
  Expr e;
  e.code_.push_back({Op::kConst, 0, v});
  e.text_ = std::to_string(v);
  return e;
}

double Expr::eval(const double* vars, const double* extra) const {
  double st[kMaxStack + 1];
  int sp = 0;
  for (const Instr& in : code_) {
    switch (in.op) {
      case Op::kConst: st[sp++] = in.k; break;
      case Op::kVar: st[sp++] = vars[in.index]; break;
      case Op::kExtra: st[sp++] = extra ? extra[in.index] : 0.0; break;
      case Op::kNeg: st[sp - 1] = -st[sp - 1]; break;
      case Op::kNot: st[sp - 1] = st[sp - 1] == 0 ? 1 : 0; break;
#define KILN_BIN(OP, EXPR)          \
  case Op::OP: {                    \
    double b = st[--sp];            \
    double a = st[sp - 1];          \
    st[sp - 1] = (EXPR);            \
    break;                          \
  }
      KILN_BIN(kAdd, a + b)
      KILN_BIN(kSub, a - b)
      KILN_BIN(kMul, a * b)
      KILN_BIN(kDiv, a / b)
      KILN_BIN(kMod, std::fmod(a, b))
      KILN_BIN(kPow, std::pow(a, b))
      KILN_BIN(kLt, a < b ? 1 : 0)
      KILN_BIN(kLe, a <= b ? 1 : 0)
      KILN_BIN(kGt, a > b ? 1 : 0)
      KILN_BIN(kGe, a >= b ? 1 : 0)
      KILN_BIN(kEq, a == b ? 1 : 0)
      KILN_BIN(kNe, a != b ? 1 : 0)
      KILN_BIN(kAnd, (a != 0 && b != 0) ? 1 : 0)
      KILN_BIN(kOr, (a != 0 || b != 0) ? 1 : 0)
      KILN_BIN(kMin, std::fmin(a, b))
      KILN_BIN(kMax, std::fmax(a, b))
#undef KILN_BIN
      case Op::kSelect: {
        double b = st[--sp];
        double a = st[--sp];
        st[sp - 1] = st[sp - 1] != 0 ? a : b;
        break;
      }
      case Op::kClamp: {
        double hi = st[--sp];
        double lo = st[--sp];
        st[sp - 1] = std::fmin(std::fmax(st[sp - 1], lo), hi);
        break;
      }
      case Op::kAbs: st[sp - 1] = std::fabs(st[sp - 1]); break;
      case Op::kSqrt: st[sp - 1] = std::sqrt(st[sp - 1]); break;
      case Op::kExp: st[sp - 1] = std::exp(st[sp - 1]); break;
      case Op::kLog: st[sp - 1] = std::log(st[sp - 1]); break;
      case Op::kLog10: st[sp - 1] = std::log10(st[sp - 1]); break;
      case Op::kSin: st[sp - 1] = std::sin(st[sp - 1]); break;
      case Op::kCos: st[sp - 1] = std::cos(st[sp - 1]); break;
      case Op::kTan: st[sp - 1] = std::tan(st[sp - 1]); break;
      case Op::kFloor: st[sp - 1] = std::floor(st[sp - 1]); break;
      case Op::kCeil: st[sp - 1] = std::ceil(st[sp - 1]); break;
      case Op::kRound: st[sp - 1] = std::round(st[sp - 1]); break;
      case Op::kIsnan: st[sp - 1] = std::isnan(st[sp - 1]) ? 1 : 0; break;
      case Op::kSign: st[sp - 1] = st[sp - 1] > 0 ? 1 : st[sp - 1] < 0 ? -1 : 0; break;
    }
  }
  return sp > 0 ? st[sp - 1] : 0.0;
}

}  // namespace kiln::control
