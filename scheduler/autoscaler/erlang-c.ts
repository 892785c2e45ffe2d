/**
 * M/M/c queueing (Erlang C): c servers, Poisson arrivals at rate λ, exponential service at rate μ
 * per server. Used to predict how a node's latency falls as replicas are added.
 *
 *   a = λ/μ (offered load), ρ = a/c (utilisation, must be < 1)
 *   C(c, a) = (a^c / c!) / ((1 − ρ) Σ_{k<c} a^k/k! + a^c/c!)      probability an arrival waits
 *   P(Wq > t) = C(c, a) · e^{−(cμ − λ) t}                           waiting-time tail
 */

/** Erlang C probability of waiting; 1 when the system is unstable (ρ ≥ 1). */
export function erlangC(servers: number, arrivalRate: number, serviceRate: number): number {
  if (servers <= 0 || serviceRate <= 0) return 1;
  const a = arrivalRate / serviceRate;
  const rho = a / servers;
  if (rho >= 1) return 1;
  if (arrivalRate <= 0) return 0;
  // Iterative terms avoid overflow: term_k = a^k / k!
  let term = 1;
  let sum = 1;
  for (let k = 1; k < servers; k++) {
    term *= a / k;
    sum += term;
  }
  const last = (term * a) / servers; // a^c / c!
  return last / ((1 - rho) * sum + last);
}

/** Mean waiting time in queue (s); Infinity when unstable. */
export function meanWait(servers: number, arrivalRate: number, serviceRate: number): number {
  if (arrivalRate <= 0) return 0;
  if (arrivalRate >= servers * serviceRate) return Infinity;
  return erlangC(servers, arrivalRate, serviceRate) / (servers * serviceRate - arrivalRate);
}

/** The p-quantile (0 < p < 1) of waiting time in queue (s); Infinity when unstable. */
export function waitQuantile(servers: number, arrivalRate: number, serviceRate: number, p: number): number {
  if (arrivalRate <= 0) return 0;
  if (arrivalRate >= servers * serviceRate) return Infinity;
  const c = erlangC(servers, arrivalRate, serviceRate);
  if (c <= 1 - p) return 0;
  return Math.log(c / (1 - p)) / (servers * serviceRate - arrivalRate);
}
