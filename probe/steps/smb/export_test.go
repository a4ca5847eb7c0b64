package smb

import (
	"context"
	"io"
)

// Internals the external tests of this package use.

// ReadSMBFrame is readSMBFrame, for the fuzz test and the benchmark.
func ReadSMBFrame(r io.Reader, maxLen int, nbss bool) ([]byte, error) {
	return readSMBFrame(r, maxLen, nbss)
}

// NegotiateFrameLimit is the longest negotiate answer the step reads.
const NegotiateFrameLimit = negotiateFrameLimit

// ShareStepBudget is how many scan timeouts the share check may take once connected.
const ShareStepBudget = shareStepBudget

// RecordLogonFailure counts one logon failure against c, as a share check whose logon failed does.
func RecordLogonFailure(c *Credentials) {
	a, err := c.begin(context.Background())
	if err != nil {
		panic("credentials already disabled: " + err.Error())
	}
	a.end(logonFailed)
}
