using System.Text;
using Softnet.Link;

namespace Softnet.Transport;

/// <summary>One connection a listener's reader accepted: its peer, the bytes read, the start of their SHA-256, and
/// how the stream ended (fin: read returned 0; rst: ECONNRESET; open: neither when the replay ended).</summary>
public sealed record ConnectionRecord(SockAddr Peer, long Bytes, ulong Sha, string End);

/// <summary>
/// A listening TCP socket (`tcp listen ADDR:PORT` in a sockets file) and its reader, which accepts every connection
/// and reads each until EOF or reset, closing on EOF.
/// </summary>
public sealed class TcpListenSock : Sock
{
    public TcpListenSock(Namespace ns, string line, SockAddr local, int? rcvbuf, int cpu) : base(ns, line, local, rcvbuf, cpu) { }

    /// <summary>net.ipv4.tcp_rmem[1]: a TCP socket's initial sk_rcvbuf unless SO_RCVBUF set it.</summary>
    protected override int DefaultRcvBuf => 131072;

    /// <summary>Accepted connections in accept order (for the dump).</summary>
    public List<ConnectionRecord> Accepted { get; } = new();

    public override void Read(NetStack stack) { }

    public override void WriteDump(StringBuilder sb)
    {
        sb.Append(Line).Append('\n');
        foreach (var c in Accepted)
            sb.Append("  connection ").Append(c.Peer).Append(" bytes ").Append(c.Bytes).Append(" sha256 ").Append(Hex16(c.Sha))
              .Append(" end ").Append(c.End).Append('\n');
    }
}
