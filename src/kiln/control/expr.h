// kiln/control/expr.h — a small, safe expression language for blocks, interlocks and state
// machines ("furnace_temp > 450 && !manual", "clamp(sp + 5 * err, 0, 100)").
//
// Compiled once at build time to a flat postfix program; evaluation is a loop over that program on
// a fixed-size stack: no allocation, no recursion, no exceptions, bounded time. Hostile text (deep
// nesting, huge input, unknown names) is an error at compile time, never a crash.
//
// Syntax: numbers (1, 2.5, 1e-3), true/false, names (resolved by the caller: tags, block
// variables), parentheses, unary - + !, binary ^ * / % + - < <= > >= == != && ||, the conditional
// `c ? a : b`, and the functions abs min max clamp sqrt exp log log10 sin cos tan floor ceil round
// isnan sign. Booleans are numbers: 0 is false, anything else (NaN included) is true; comparisons
// and logic yield 0 or 1.
//
//   auto e = kiln::control::Expr::compile("a * 2 + b", [](std::string_view n) {
//     return n == "a" ? 0 : n == "b" ? 1 : -1; });   // slot of each name in `vars`, or -1
//   double vars[2] = {3, 4};
//   double v = e->eval(vars);                          // 10
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/core/status.h"

namespace kiln::control {

class Expr {
 public:
  // Maps a name to an index in the `vars` array given to eval(), or -1 when the name is unknown.
  // Indices >= kExtraBase read `extra[index - kExtraBase]` instead (block-local variables).
  using Resolver = std::function<int(std::string_view name)>;
  static constexpr int kExtraBase = 1 << 24;

  // On error, *error_pos (when given) receives the 0-based character offset of the problem.
  static Result<Expr> compile(std::string_view text, const Resolver& resolve, int* error_pos = nullptr);
  // A constant expression (used when a block parameter is a plain number).
  static Expr constant(double v);

  // Real-time safe.
  double eval(const double* vars, const double* extra = nullptr) const;

  // Slots of the variables read (below kExtraBase), without duplicates.
  const std::vector<int>& variables() const { return vars_; }
  const std::string& text() const { return text_; }
  bool is_constant() const { return code_.size() == 1 && code_[0].op == Op::kConst; }

  enum class Op : uint8_t {
    kConst, kVar, kExtra, kNeg, kNot, kAdd, kSub, kMul, kDiv, kMod, kPow, kLt, kLe, kGt, kGe, kEq, kNe,
    kAnd, kOr, kSelect, kAbs, kMin, kMax, kClamp, kSqrt, kExp, kLog, kLog10, kSin, kCos, kTan, kFloor,
    kCeil, kRound, kIsnan, kSign
  };
  struct Instr {
    Op op;
    int index = 0;
    double k = 0;
  };
  static constexpr int kMaxStack = 64;

 private:
  friend class ExprParser;
  std::vector<Instr> code_;
  std::vector<int> vars_;
  std::string text_;
};

}  // namespace kiln::control
