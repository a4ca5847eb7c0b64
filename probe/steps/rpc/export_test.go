package rpc

import "io"

// ReadPDU is readPDU, for the fuzz test.
func ReadPDU(r io.Reader) ([]byte, error) { return readPDU(r) }
