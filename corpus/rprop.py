# Rprop (Riedmiller & Braun 1993; the iRprop- variant), as torch.optim.Rprop(params, lr=0.01,
# etas=(0.5, 1.2), step_sizes=(1e-6, 50)) computes it: every entry's step size starts at lr (a
# state with an initial value), grows by eta_plus while the gradient keeps its sign and shrinks by
# eta_minus when it flips, within [step_min, step_max]; after a flip the entry does not move and
# its gradient is forgotten. The lr input is not read: it only sets the initial step size.
def rprop(w, g, prev, step_size: state = 0.01, eta_minus=0.5, eta_plus=1.2, step_min=1e-6, step_max=50):
  s = sign(g * prev)
  factor = where(s > 0, eta_plus, where(s < 0, eta_minus, 1))
  step_size = clamp(step_size * factor, step_min, step_max)
  g = where(s < 0, 0, g)
  update = sign(g) * step_size
  return update, g, step_size
