package engine

// fdReserve is the file descriptors kept back from the socket budget for the process itself: output files, the
// resolver, standard streams, the runtime's own.
const fdReserve = 64

// SocketBudget returns the sockets in flight the open-file limit allows for the requested budget: the request itself
// when it fits below the limit with a reserve kept back, else the largest that does.
func SocketBudget(requested int, fileLimit uint64) int {
	if fileLimit <= fdReserve+1 {
		return 1
	}
	allowed := fileLimit - fdReserve
	if uint64(requested) > allowed {
		return int(allowed)
	}
	return requested
}
