package msrpc

import (
	"testing"
)

// FuzzParseBindResponse checks that no input makes the parser panic and that what it accepts
// obeys the limits of the fragment.
func FuzzParseBindResponse(f *testing.F) {
	for _, v := range []string{bindVector, ackVector,
		`05000d03100000001800000001000000 0000 01 0500 000000`,
		`05000c0300000000003c000000000001 10b810b8000053f0 0005 3434353100 00
			01000000 0000 0000 8a885d041ceb11c99fe808002b104860 00000002`,
	} {
		f.Add(unhex(f, v))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseBindResponse(b)
		if err != nil {
			return
		}
		h, herr := ParseHeader(b)
		if herr != nil || h != r.Header {
			t.Fatalf("ParseHeader = %+v, %v; ParseBindResponse header %+v", h, herr, r.Header)
		}
		if int(r.Header.FragLength) > len(b) || r.Header.FragLength > MaxFrag {
			t.Fatalf("accepted a fragment of %d bytes from %d", r.Header.FragLength, len(b))
		}
		switch r.Kind {
		case KindAck:
			if HeaderLen+10+len(r.SecondaryAddr)+4+len(r.Results)*contextResultLen > int(r.Header.FragLength) {
				t.Fatalf("ack fields exceed the fragment: %+v", r)
			}
		case KindNak:
			if HeaderLen+2+2*len(r.Versions) > int(r.Header.FragLength) {
				t.Fatalf("nak fields exceed the fragment: %+v", r)
			}
		default:
			t.Fatalf("kind %v without error", r.Kind)
		}
		_ = r.String()
	})
}

// FuzzParseHeader checks that ParseHeader never panics and that an accepted header can hold
// its own authentication trailer.
func FuzzParseHeader(f *testing.F) {
	f.Add(unhex(f, bindVector))
	f.Add(unhex(f, "05000c0310000000ffffffff01000000"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			return
		}
		if h.bodyEnd() < HeaderLen || h.bodyEnd() > int(h.FragLength) {
			t.Fatalf("body end %d outside [%d, %d]", h.bodyEnd(), HeaderLen, h.FragLength)
		}
	})
}

// FuzzAppendBind checks that every bind parses back with its call id and length.
func FuzzAppendBind(f *testing.F) {
	f.Add(uint32(1))
	f.Fuzz(func(t *testing.T, callID uint32) {
		b := AppendBind(nil, callID)
		h, err := ParseHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		want := Header{Version: 5, Type: TypeBind, Flags: 3, DataRep: [4]byte{0x10}, FragLength: BindLen, CallID: callID}
		if h != want || len(b) != BindLen {
			t.Fatalf("header %+v of %d bytes, want %+v", h, len(b), want)
		}
	})
}
