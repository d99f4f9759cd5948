import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';

/**
 * A transfer's own socket: bound to an ephemeral port on `address` and connected to the client, so the
 * kernel keeps other peers out and reports an unreachable client. Closed again if either step fails.
 */
export async function transferSocket(
  address: string,
  family: 'udp4' | 'udp6',
  client: RemoteInfo,
): Promise<Socket> {
  const sock = createSocket({ type: family });
  try {
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind({ address, port: 0 }, () => {
        sock.connect(client.port, client.address, () => {
          sock.off('error', reject);
          resolve();
        });
      });
    });
    return sock;
  } catch (err) {
    try {
      sock.close();
    } catch {
      // never bound
    }
    throw err;
  }
}
