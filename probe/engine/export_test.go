package engine

// Internals the external tests of this package read.

// Debt is the sockets the budget still has to keep back after pushback cuts.
func (e *Env) Debt() int64 { return e.debt.Load() }

// MinBudget is the smallest socket budget pushback shrinks a scan to.
const MinBudget = minBudget

// set records step i's result r as the engine does, in two steps: decided as the step ends, then store.
func (h *Host) set(i int, r Result) {
	h.decided(i, r)
	if r != nil {
		h.store(i, r)
	}
}
