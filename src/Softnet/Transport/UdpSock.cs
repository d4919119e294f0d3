using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Softnet.Ip;
using Softnet.Link;
using Softnet.Packets;
using Softnet.Telemetry;

namespace Softnet.Transport;

/// <summary>One datagram a reader took: its sender, payload length and the start of the payload's SHA-256.</summary>
public readonly record struct DatagramRecord(SockAddr From, int Length, ulong Sha);

/// <summary>
/// A bound UDP socket (`udp ADDR:PORT` in a sockets file) and its reader, which reads every datagram
/// (udp_recvmsg). Datagrams wait in the receive queue, charged to sk_rmem_alloc by truesize, until the reader runs.
/// </summary>
public sealed class UdpSock : Sock
{
    private readonly Queue<Skb> _queue = new(64);

    public UdpSock(Namespace ns, string line, SockAddr local, int? rcvbuf, int cpu) : base(ns, line, local, rcvbuf, cpu) { }

    /// <summary>What the reader read, in order (kept only while the stack records, for the dump).</summary>
    public List<DatagramRecord>? Received { get; internal set; }

    /// <summary>__udp_enqueue_schedule_skb: drops (false) when what is queued already exceeds sk_rcvbuf, so one
    /// datagram always fits an empty queue; otherwise charges its truesize and queues it.</summary>
    internal bool Enqueue(Skb skb)
    {
        if (RmemAlloc > RcvBuf) { Drops++; return false; }
        RmemAlloc += skb.TrueSize;
        _queue.Enqueue(skb);
        return true;
    }

    public int Queued => _queue.Count;

    /// <summary>udp_recvmsg for every queued datagram: a checksum still unverified is checked as the data is copied
    /// (a bad one is dropped there and counted as InCsumErrors and InErrors); a good one counts InDatagrams.</summary>
    public override void Read(NetStack stack)
    {
        var mib = Namespace.Mib;
        Span<byte> sha = stackalloc byte[32];
        while (_queue.TryDequeue(out var skb))
        {
            RmemAlloc -= skb.TrueSize;
            var pkt = stack.Linearize(skb);
            bool v6 = pkt[0] >> 4 == 6;
            int ihl = v6 ? skb.TransportHeader - skb.NetworkHeader : (pkt[0] & 0xF) * 4;
            var udp = pkt[ihl..];
            int ulen = BinaryPrimitives.ReadUInt16BigEndian(udp[4..]);
            if (v6 && ulen == 0) ulen = udp.Length;
            udp = udp[..ulen];
            if (v6 ? !Udp6Receive.ChecksumOk(skb, pkt, udp) : !UdpReceive.ChecksumOk(skb, pkt, udp))
            {
                mib[v6 ? SnmpCounter.Udp6InCsumErrors : SnmpCounter.UdpInCsumErrors]++;
                mib[v6 ? SnmpCounter.Udp6InErrors : SnmpCounter.UdpInErrors]++;
                Drops++;
                InetProtocol.DropDelivered(Namespace, skb, DropReason.UdpCsumError);
                continue;
            }
            mib[v6 ? SnmpCounter.Udp6InDatagrams : SnmpCounter.UdpInDatagrams]++;
            NoteRead(1, udp.Length - 8, stack.Now);
            if (Received is { } log)
            {
                var from = v6 ? new SockAddr(true, Ipv6.Read(pkt[8..]), BinaryPrimitives.ReadUInt16BigEndian(udp))
                    : SockAddr.FromV4(BinaryPrimitives.ReadUInt32BigEndian(pkt[12..]), BinaryPrimitives.ReadUInt16BigEndian(udp));
                if (Local.V6) from = from.AsV4Mapped();
                SHA256.HashData(udp[8..], sha);
                log.Add(new DatagramRecord(from, udp.Length - 8, BinaryPrimitives.ReadUInt64BigEndian(sha)));
            }
            skb.Free();
        }
    }

    public override void WriteDump(StringBuilder sb)
    {
        sb.Append(Line).Append('\n');
        if (Received == null) return;
        foreach (var d in Received)
            sb.Append("  datagram ").Append(d.From).Append(" len ").Append(d.Length).Append(" sha256 ").Append(Hex16(d.Sha)).Append('\n');
    }
}
