namespace Softnet.Transport;

/// <summary>
/// A namespace's sockets and the tables the receive path looks them up in: UDP sockets hashed by local port
/// (udp_table), TCP listeners by port (the listening hash) and TCP connections by their four-tuple (the established
/// hash). Lookups score candidates as compute_score does: a socket bound to the packet's address beats a wildcard
/// one, an IPv4 socket beats a dual-stack IPv6 one. An IPv6 wildcard listener is dual-stack (net.ipv6.bindv6only 0,
/// the default): IPv4 segments reach it when no IPv4 listener of the port takes them, and its connections are then
/// IPv4 ones whose peer accept() reports as ::ffff:a.b.c.d. IPv4 and IPv6 connections share one established hash.
/// </summary>
public sealed class SocketTable
{
    private const int Slots = 256;
    private readonly Sock?[] _udp = new Sock?[Slots];
    private readonly Sock?[] _listen = new Sock?[Slots];
    private readonly List<Sock> _all = new();

    /// <summary>Every socket of the sockets file, in file order.</summary>
    public IReadOnlyList<Sock> All => _all;
    public bool IsEmpty => _all.Count == 0;

    private static int Slot(ushort port) => port & (Slots - 1);

    /// <summary>Binds <paramref name="s"/> (bind, then listen for TCP). Null, or why the kernel would refuse the bind
    /// (EADDRINUSE: no SO_REUSEADDR, so two sockets of a protocol may share a port only on distinct specific
    /// addresses).</summary>
    public string? Add(Sock s)
    {
        var slots = s is UdpSock ? _udp : _listen;
        for (var o = slots[Slot(s.Local.Port)]; o != null; o = o.NextInSlot)
            if (o.Local.Port == s.Local.Port && Overlap(o.Local, s.Local))
                return $"{s.Local} is already bound by '{o.Line}' (bind would fail with EADDRINUSE)";
        ref var head = ref slots[Slot(s.Local.Port)];
        s.NextInSlot = head;
        head = s;
        _all.Add(s);
        return null;
    }

    /// <summary>Whether two binds of one port take a common address: a wildcard takes every address of its family,
    /// and an IPv6 wildcard (not IPV6_V6ONLY, the default) IPv4's too.</summary>
    private static bool Overlap(SockAddr a, SockAddr b)
    {
        if (a.V6 == b.V6) return a.IsWildcard || b.IsWildcard || a.Address == b.Address;
        var v6 = a.V6 ? a : b;
        var v4 = a.V6 ? b : a;
        return v6.IsWildcard || v6.Address == v4.AsV4Mapped().Address;
    }

    /// <summary>__udp4_lib_lookup for an IPv4 datagram to <paramref name="daddr"/>:<paramref name="dport"/>.</summary>
    public UdpSock? LookupUdp4(uint daddr, ushort dport) => (UdpSock?)Lookup4(_udp, daddr, dport);

    /// <summary>__inet_lookup_listener for an IPv4 segment to <paramref name="daddr"/>:<paramref name="dport"/>.</summary>
    public Sock? LookupListener4(uint daddr, ushort dport) => Lookup4(_listen, daddr, dport);

    private static Sock? Lookup4(Sock?[] slots, uint daddr, ushort dport)
    {
        Sock? best = null;
        int bestScore = -1;
        for (var s = slots[Slot(dport)]; s != null; s = s.NextInSlot)
        {
            int score = Score4(s.Local, daddr, dport);
            if (score > bestScore) { best = s; bestScore = score; }
        }
        return best;
    }

    /// <summary>compute_score for an IPv4 packet: -1 no match; an IPv4 socket 2, a dual-stack IPv6 wildcard 1; a
    /// bound address that matches adds 4.</summary>
    private static int Score4(SockAddr local, uint daddr, ushort dport)
    {
        if (local.Port != dport) return -1;
        if (local.V6)
        {
            if (local.IsWildcard) return 1;
            return local.Address == SockAddr.FromV4(daddr, 0).AsV4Mapped().Address ? 5 : -1;
        }
        if (local.IsWildcard) return 2;
        return local.V4 == daddr ? 6 : -1;
    }

    /// <summary>__udp6_lib_lookup for an IPv6 datagram to <paramref name="daddr"/>:<paramref name="dport"/>.</summary>
    public UdpSock? LookupUdp6(UInt128 daddr, ushort dport) => (UdpSock?)Lookup6(_udp, daddr, dport);

    /// <summary>inet6_lookup_listener for an IPv6 segment.</summary>
    public Sock? LookupListener6(UInt128 daddr, ushort dport) => Lookup6(_listen, daddr, dport);

    private static Sock? Lookup6(Sock?[] slots, UInt128 daddr, ushort dport)
    {
        Sock? best = null;
        int bestScore = -1;
        for (var s = slots[Slot(dport)]; s != null; s = s.NextInSlot)
        {
            int score = Score6(s.Local, daddr, dport);
            if (score > bestScore) { best = s; bestScore = score; }
        }
        return best;
    }

    /// <summary>compute_score for an IPv6 packet: only IPv6 sockets; a wildcard 1, the bound address 5.</summary>
    private static int Score6(SockAddr local, UInt128 daddr, ushort dport)
    {
        if (local.Port != dport || !local.V6) return -1;
        if (local.IsWildcard) return 1;
        return local.Address == daddr ? 5 : -1;
    }

    /// <summary>The UDP sockets an IPv6 multicast datagram reaches (__udp_v6_is_mcast_sock).</summary>
    public IEnumerable<UdpSock> UdpMulticastTargets6(UInt128 daddr, ushort dport)
    {
        for (var s = _udp[Slot(dport)]; s != null; s = s.NextInSlot)
            if (Score6(s.Local, daddr, dport) >= 0) yield return (UdpSock)s;
    }

    /// <summary>The UDP sockets a broadcast or multicast datagram reaches (__udp_is_mcast_sock: the port, and a
    /// wildcard or the datagram's destination as bound address), in hash-chain order.</summary>
    public IEnumerable<UdpSock> UdpMulticastTargets(uint daddr, ushort dport)
    {
        for (var s = _udp[Slot(dport)]; s != null; s = s.NextInSlot)
            if (Score4(s.Local, daddr, dport) >= 0) yield return (UdpSock)s;
    }

    /// <summary>Keep what readers read, for sockets.txt.</summary>
    public void StartRecording()
    {
        Recording = true;
        foreach (var s in _all)
            if (s is UdpSock u) u.Received ??= new List<DatagramRecord>();
    }

    /// <summary>Readers keep what they read (sockets.txt).</summary>
    public bool Recording { get; private set; }

    // ---- TCP connections and requests, by four-tuple (inet_ehash) ----

    private TcpSock?[] _established = new TcpSock?[64];
    private int _connections;

    private static uint TupleHash(uint laddr, ushort lport, uint raddr, ushort rport)
    {
        ulong x = ((ulong)laddr << 32 | raddr) * 0x9E3779B97F4A7C15UL ^ ((ulong)lport << 16 | rport) * 0xC2B2AE3D27D4EB4FUL;
        return (uint)(x ^ (x >> 29));
    }

    /// <summary>inet6_ehashfn's role: the IPv6 four-tuple folded into the IPv4 hash's inputs.</summary>
    private static uint TupleHash6(UInt128 laddr, ushort lport, UInt128 raddr, ushort rport)
        => TupleHash((uint)TcpSecure.Fold(laddr), lport, (uint)TcpSecure.Fold(raddr), rport);

    private static uint TupleHash(TcpSock s)
        => s.V6 ? TupleHash6(s.LocalAddr6, s.LocalPort, s.RemoteAddr6, s.RemotePort) : TupleHash(s.LocalAddr, s.LocalPort, s.RemoteAddr, s.RemotePort);

    /// <summary>__inet_lookup_established: the connection (or request) of this four-tuple.</summary>
    public TcpSock? LookupEstablished(uint laddr, ushort lport, uint raddr, ushort rport)
    {
        if (_connections == 0) return null;
        for (var s = _established[TupleHash(laddr, lport, raddr, rport) & (uint)(_established.Length - 1)]; s != null; s = s.NextInHash)
            if (s.LocalAddr == laddr && s.LocalPort == lport && s.RemoteAddr == raddr && s.RemotePort == rport && !s.V6) return s;
        return null;
    }

    /// <summary>__inet6_lookup_established: the IPv6 connection (or request) of this four-tuple.</summary>
    public TcpSock? LookupEstablished6(UInt128 laddr, ushort lport, UInt128 raddr, ushort rport)
    {
        if (_connections == 0) return null;
        for (var s = _established[TupleHash6(laddr, lport, raddr, rport) & (uint)(_established.Length - 1)]; s != null; s = s.NextInHash)
            if (s.LocalPort == lport && s.RemotePort == rport && s.V6 && s.LocalAddr6 == laddr && s.RemoteAddr6 == raddr) return s;
        return null;
    }

    internal void Hash(TcpSock s)
    {
        if (_connections >= _established.Length)
        {
            var old = _established;
            _established = new TcpSock?[old.Length * 2];
            _connections = 0;
            foreach (var head in old)
                for (var c = head; c != null;)
                {
                    var next = c.NextInHash;
                    Link(c);
                    c = next;
                }
        }
        Link(s);
    }

    private void Link(TcpSock s)
    {
        ref var head = ref _established[TupleHash(s) & (uint)(_established.Length - 1)];
        s.NextInHash = head;
        head = s;
        _connections++;
    }

    /// <summary>inet_unhash: the connection is done; later segments of its four-tuple find no socket.</summary>
    internal void Unhash(TcpSock s)
    {
        ref var link = ref _established[TupleHash(s) & (uint)(_established.Length - 1)];
        while (link != null)
        {
            if (link == s)
            {
                link = s.NextInHash;
                s.NextInHash = null;
                _connections--;
                return;
            }
            link = ref link.NextInHash;
        }
    }
}
