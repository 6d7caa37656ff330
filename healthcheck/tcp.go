package healthcheck

import "context"

// probeTCP passes when the target accepts a TCP connection. It closes the connection at once,
// sending nothing.
func probeTCP(ctx context.Context, c Config, addr string, src *source) error {
	conn, err := dial(ctx, src, addr, c.Port)
	if err != nil {
		return err
	}
	conn.Close()
	return nil
}
