# Adadelta (Zeiler 2012, Algorithm 1), as torch.optim.Adadelta(params, lr=1.0, rho=0.9, eps=1e-6)
# computes it: the step is sqrt(acc_delta + eps) / sqrt(square_avg + eps) * g, scaled by lr.
def adadelta(w, g, square_avg, acc_delta, lr=1.0, rho=0.9, eps=1e-6):
  square_avg = interp(g * g, square_avg, rho)
  delta = sqrt(acc_delta + eps) / sqrt(square_avg + eps) * g
  acc_delta = interp(delta * delta, acc_delta, rho)
  update = lr * delta
  return update, square_avg, acc_delta
