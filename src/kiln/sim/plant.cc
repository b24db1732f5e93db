#include "kiln/sim/plant.h"

#include <algorithm>

namespace kiln::sim {

Rng::Rng(uint64_t seed) {
  uint64_t x = seed;
  for (auto& s : s_) {
    x += 0x9e3779b97f4a7c15ULL;
    uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    s = z ^ (z >> 31);
  }
}

uint64_t Rng::next() {
  auto rotl = [](uint64_t v, int k) { return (v << k) | (v >> (64 - k)); };
  uint64_t r = rotl(s_[1] * 5, 7) * 9;
  uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return r;
}

double Rng::uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

double Rng::normal() {
  if (have_spare_) {
    have_spare_ = false;
    return spare_;
  }
  double u = uniform(), v = uniform();
  if (u < 1e-300) u = 1e-300;
  double r = std::sqrt(-2.0 * std::log(u));
  spare_ = r * std::sin(2 * M_PI * v);
  have_spare_ = true;
  return r * std::cos(2 * M_PI * v);
}

// ---------------------------------------------------------------------------------------------
Spindle::Spindle(uint64_t seed, SpindleParams p) : p_(p), rng_(seed) {}

void Spindle::inject_bearing_fault(double at_s, double growth_per_s) {
  fault_at_ = at_s;
  fault_rate_ = growth_per_s;
}

double Spindle::bearing_severity(double t_s) const {
  if (fault_at_ < 0 || t_s < fault_at_) return 0;
  return std::min(1.0, (t_s - fault_at_) * fault_rate_);
}

double Spindle::step(double t_s) {
  double dt = last_t_ < 0 ? 0 : std::max(0.0, t_s - last_t_);
  last_t_ = t_s;
  // Speed: first-order response to the setpoint, with a little load noise.
  if (dt > 0) {
    double a = 1 - std::exp(-dt / p_.tau_s);
    speed_ += a * (sp_ - speed_);
    speed_ += 0.002 * speed_ * rng_.normal() * std::sqrt(dt);
    if (speed_ < 0) speed_ = 0;
    // Slow wander of the amplitudes (mount stiffness, load), an Ornstein-Uhlenbeck process.
    for (double& m : amp_mod_) m += (1 - m) * dt / 5.0 + p_.wander * std::sqrt(2 * dt / 5.0) * rng_.normal();
    noise_mod_ += (1 - noise_mod_) * dt / 5.0 + p_.wander * std::sqrt(2 * dt / 5.0) * rng_.normal();
  }
  double f_shaft = speed_ / 60.0;
  phase_ = std::fmod(phase_ + 2 * M_PI * f_shaft * dt, 2 * M_PI * 1e6);
  double rel = speed_ / p_.rated_rpm;
  double v = 0;
  for (size_t k = 0; k < p_.harmonics_g.size(); ++k)
    v += rel * p_.harmonics_g[k] * std::max(0.2, amp_mod_[k]) * std::sin(static_cast<double>(k + 1) * phase_ + 0.7 * static_cast<double>(k));
  v += p_.noise_g * std::max(0.3, noise_mod_) * rng_.normal();
  // Bearing outer-race defect: an impact every 1/BPFO seconds rings the structural resonance.
  double sev = bearing_severity(t_s);
  since_impact_ += dt;
  if (f_shaft > 0.5) {
    if (since_impact_ >= next_impact_) {
      since_impact_ = 0;
      double period = 1.0 / (p_.bpfo_ratio * f_shaft);
      next_impact_ = period * (1 + 0.01 * rng_.normal());  // slip
    }
    if (sev > 0)
      v += sev * p_.fault_g * std::max(0.3, rel * 2) * std::exp(-since_impact_ / p_.ring_decay_s) *
           std::sin(2 * M_PI * p_.resonance_hz * since_impact_);
  }
  return v;
}

// ---------------------------------------------------------------------------------------------
Furnace::Furnace(uint64_t seed, FurnaceParams p) : p_(p), rng_(seed), temp_(p.ambient_c), power_(4096, {0.0, 0.0}) {}

void Furnace::set_power(double pct, double t_s) {
  if (stuck_at_ >= 0 && t_s >= stuck_at_) pct = 100;
  pct = std::clamp(std::isnan(pct) ? 0.0 : pct, 0.0, 100.0);
  power_[(head_ + count_) % power_.size()] = {t_s, pct};
  if (count_ < power_.size()) ++count_;
  else head_ = (head_ + 1) % power_.size();
}

double Furnace::step(double t_s) {
  double dt = last_t_ < 0 ? 0 : std::max(0.0, t_s - last_t_);
  last_t_ = t_s;
  // The power acting now is the last command given at least dead_time ago.
  double acting = 0;
  while (count_ > 1 && power_[(head_ + 1) % power_.size()].first <= t_s - p_.dead_time_s) {
    head_ = (head_ + 1) % power_.size();
    --count_;
  }
  if (count_ > 0 && power_[head_].first <= t_s - p_.dead_time_s) acting = power_[head_].second;
  double target = p_.ambient_c + p_.gain_c_per_pct * acting;
  temp_ = target + (temp_ - target) * std::exp(-dt / p_.tau_s);
  if (nan_at_ >= 0 && t_s >= nan_at_) return NAN;
  return temp_ + p_.noise_c * rng_.normal();
}

// ---------------------------------------------------------------------------------------------
Conveyor::Conveyor(uint64_t seed, ConveyorParams p) : p_(p), rng_(seed) { next_item_ = 0.2; }

void Conveyor::step(double t_s) {
  double dt = last_t_ < 0 ? 0 : std::max(0.0, t_s - last_t_);
  last_t_ = t_s;
  double cmd = std::clamp(cmd_, 0.0, p_.max_speed);
  if (jam_at_ >= 0 && t_s >= jam_at_) cmd = 0;
  speed_ += (1 - std::exp(-dt / p_.tau_s)) * (cmd - speed_);
  pos_ += speed_ * dt;
  // Items pass the photo-eye at exponentially distributed belt distances.
  if (pos_ >= next_item_) {
    present_ = true;
    item_end_ = next_item_ + p_.item_length;
    next_item_ += p_.item_length + (-std::log(1 - rng_.uniform()) / p_.items_per_m);
    ++count_;
  }
  if (present_ && pos_ >= item_end_) present_ = false;
}

}  // namespace kiln::sim
