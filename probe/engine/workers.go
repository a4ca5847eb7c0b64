package engine

import "sync"

// workerPool runs probe steps on long-lived goroutines. A goroutine per step would be simpler, but each new one
// starts with a small stack and grows it by copying as a dial goes deep: in a /18 sweep that copying was 9% of the
// CPU. Workers keep their grown stacks. There is no fixed size: a step goes to an idle worker when there is one,
// and otherwise starts a new worker, so the workers never outnumber the steps that ran at once, which the socket
// budget bounds. They all end with stop.
type workerPool struct {
	mu    sync.Mutex
	work  chan func()
	wg    sync.WaitGroup
	ready int // workers waiting for work
}

// do runs fn on a worker.
func (p *workerPool) do(fn func()) {
	p.mu.Lock()
	if p.work == nil {
		p.work = make(chan func())
	}
	if p.ready > 0 {
		p.ready--
		p.mu.Unlock()
		p.work <- fn
		return
	}
	p.mu.Unlock()
	p.wg.Add(1)
	go p.run(fn)
}

func (p *workerPool) run(fn func()) {
	defer p.wg.Done()
	for {
		fn()
		p.mu.Lock()
		if p.work == nil {
			p.mu.Unlock()
			return
		}
		p.ready++
		work := p.work
		p.mu.Unlock()
		var ok bool
		if fn, ok = <-work; !ok {
			return
		}
	}
}

// stop ends the workers once every step given to do has run, and waits for them.
func (p *workerPool) stop() {
	p.mu.Lock()
	if p.work != nil {
		close(p.work)
		p.work = nil
	}
	p.ready = 0
	p.mu.Unlock()
	p.wg.Wait()
}
