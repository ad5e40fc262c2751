package device

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
)

// Doze tells ccsd the device is dozing (an Android phone in Doze): until
// Awake, or until the session ends (a new session starts awake), ccsd sends
// only high-priority messages at once; normal ones are held (at most
// ccsd's --max-doze-delay, 15 minutes by default, after which they come in
// a maintenance window) and delay_while_idle ones until Awake. Doze returns
// once ccsd has acked it, that is once the state is in effect: every
// message it sends after this is one the state lets through. It fails as
// Send does: a *NackError, ErrConnectionLost (the session ended: the next
// one is awake), or ctx's error.
func (c *Client) Doze(ctx context.Context) error { return c.control(ctx, "DOZE") }

// Awake tells ccsd the device is awake again: what Doze held comes, in
// the order it was sent. It returns once ccsd has acked it, as Doze does.
func (c *Client) Awake(ctx context.Context) error { return c.control(ctx, "AWAKE") }

// control sends a control stanza of ccsd's device protocol and waits for
// its ack.
func (c *Client) control(ctx context.Context, typ string) error {
	id := "ctl-" + idPrefix[2:] + strconv.FormatUint(idSeq.Add(1), 10)
	payload, _ := json.Marshal(map[string]string{"message_type": "control", "control_type": typ, "message_id": id})
	p, err := c.register(ctx, id)
	if err != nil {
		return err
	}
	defer c.forget(id, p)
	if err := p.s.c.sendGCM("", payload); err != nil {
		return fmt.Errorf("%w: %w", ErrConnectionLost, err)
	}
	select {
	case err := <-p.answer:
		if err != nil {
			return fmt.Errorf("device: %s: %w", typ, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("device: waiting for ccsd's ack of %s: %w", typ, ctx.Err())
	}
}
