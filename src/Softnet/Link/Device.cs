using System.Globalization;
using Softnet.Capture;

namespace Softnet.Link;

/// <summary>
/// One network device (struct net_device): name, MAC, kind, state, bridge membership. A veth knows its
/// peer (which may live in another namespace); a bridge owns its ports and forwarding database.
/// </summary>
public sealed class Device
{
    public Device(Namespace ns, string name, LinkKind kind, int ifindex)
    {
        Namespace = ns;
        Name = name;
        Kind = kind;
        Ifindex = ifindex;
        Mtu = kind.DefaultMtu;
    }

    public Namespace Namespace { get; internal set; }
    public string Name { get; }
    /// <summary>rtnl_link_ops: what the device does on transmit and for its ports.</summary>
    public LinkKind Kind { get; private set; }
    public int Ifindex { get; internal set; }
    public byte[] Mac { get; internal set; } = new byte[6];
    /// <summary>The MAC was given (`address`), not derived; a bridge then keeps it when ports change.</summary>
    public bool MacSet { get; internal set; }
    public bool Up { get; internal set; }
    public int Mtu { get; internal set; }
    /// <summary>The real interface this device is bound to (`softnet run --bind`), or null.</summary>
    public IDeviceWire? Wire { get; private set; }

    /// <summary>
    /// Binds this device to a real interface: what it transmits leaves through <paramref name="wire"/>, what the wire
    /// receives is received here. A veth's scenario peer is cut loose (it loses carrier, as if its end were moved
    /// elsewhere); the device keeps its name, MAC, addresses and rules.
    /// </summary>
    public void BindWire(IDeviceWire wire)
    {
        if (Peer is { } peer)
        {
            peer.Peer = null;
            Peer = null;
        }
        Wire = wire;
        Kind = LiveLink.Instance;
    }

    /// <summary>The other end of a veth pair.</summary>
    public Device? Peer { get; internal set; }
    /// <summary>The bridge this device is a port of.</summary>
    public Device? Master { get; internal set; }

    // Bridge state (kind Bridge only).
    public List<Device> Ports { get; } = new();
    public bool McastSnooping { get; internal set; } = true;
    public bool Stp { get; internal set; }
    /// <summary>br_fdb: learned MAC → port.</summary>
    internal readonly Dictionary<ulong, Device> Fdb = new();

    /// <summary>Counters as `ip -s link` would show them.</summary>
    public long RxPackets, RxBytes, RxDropped, TxPackets, TxBytes, TxDropped;
    /// <summary>rx_errors and rx_frame_errors (a VXLAN device's malformed headers and ECN errors).</summary>
    public long RxErrors, RxFrameErrors;

    /// <summary>A VXLAN device's configuration and FDB (kind vxlan only).</summary>
    public VxlanConfig? Vxlan { get; internal set; }

    /// <summary>RPS/RFS settings of the device's RX queue rx-0 (a scenario's sysfs file), null when none is set.</summary>
    public Steering.RxQueueRps? RpsRx { get; internal set; }

    /// <summary>tcpdump -i DEV -Q in / -Q out, when the replay dumps.</summary>
    public ICaptureWriter? RxTap, TxTap;

    /// <summary>Is the link usable for receive: up, and for a veth the peer up too (carrier).</summary>
    public bool Carrier => Up && Kind.HasCarrier(this);

    /// <summary>Per-device values derived from the namespace's sysctls (in_device's ipv4_devconf), valid while
    /// <see cref="ConfCache.Version"/> is the table's version + 1.</summary>
    internal struct ConfCache
    {
        public int Version;
        public bool Forwarding;
        public int RpFilter;
        public bool AcceptSourceRoute;
        // IPv6 (inet6_dev's cnf): disable_ipv6, forwarding (the NA router flag), hop_limit, addr_gen_mode.
        public bool Disable6, Forwarding6, AcceptLocal;
        public int HopLimit6, AddrGenMode6, Mtu6;
        // IN_DEV_TX_REDIRECTS, IN_DEV_SHARED_MEDIA (ORCONF); IN_DEV_ARP_IGNORE, IN_DEV_ARP_ANNOUNCE (MAXCONF).
        public bool SendRedirects, SharedMedia, AcceptRedirects, SecureRedirects;
        public int ArpIgnore, ArpAnnounce;
    }

    internal ConfCache Conf;

    internal const int ConfForwarding = 0, ConfRpFilter = 1, Conf6Disable = 2, Conf6Forwarding = 3, Conf6HopLimit = 4, Conf6AddrGenMode = 5,
        ConfAcceptSourceRoute = 6, ConfAcceptLocal = 7, ConfSendRedirects = 8, ConfSharedMedia = 9, ConfArpIgnore = 10, ConfArpAnnounce = 11,
        ConfAcceptRedirects = 12, ConfSecureRedirects = 13;
    private readonly string?[] _confKeys = new string?[14];

    /// <summary>"net.ipv6.conf.DEV.NAME" (the Conf6 slots) or "net.ipv4.conf.DEV.NAME", made once
    /// per device (a per-packet lookup allocates nothing).</summary>
    internal string ConfKey(int slot, string name)
        => _confKeys[slot] ??= slot is >= Conf6Disable and <= Conf6AddrGenMode ? $"net.ipv6.conf.{Name}.{name}" : $"net.ipv4.conf.{Name}.{name}";

    public override string ToString() => $"{Namespace.Name}/{Name}";

    internal static ulong MacKey(ReadOnlySpan<byte> mac)
        => ((ulong)mac[0] << 40) | ((ulong)mac[1] << 32) | ((ulong)mac[2] << 24) | ((ulong)mac[3] << 16) | ((ulong)mac[4] << 8) | mac[5];

    public static string FormatMac(ReadOnlySpan<byte> mac)
        => string.Create(CultureInfo.InvariantCulture, $"{mac[0]:x2}:{mac[1]:x2}:{mac[2]:x2}:{mac[3]:x2}:{mac[4]:x2}:{mac[5]:x2}");

    public static bool TryParseMac(string s, out byte[] mac)
    {
        mac = new byte[6];
        var parts = s.Split(':');
        if (parts.Length != 6) return false;
        for (int i = 0; i < 6; i++)
            if (parts[i].Length is < 1 or > 2 || !byte.TryParse(parts[i], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out mac[i])) return false;
        return true;
    }

    /// <summary>
    /// A MAC derived from the namespace and device name (locally administered, unicast). The kernel picks
    /// random MACs for veth and bridges (eth_hw_addr_random), so a scenario meant for kernel comparison must
    /// set every address explicitly (`address MAC`); this only makes Softnet runs reproducible.
    /// </summary>
    public static byte[] DeriveMac(string ns, string name)
    {
        // FNV-1a over "ns/name": stable across runs and .NET versions (string.GetHashCode is randomized).
        ulong h = 0xcbf29ce484222325UL;
        foreach (char c in ns + "/" + name)
        {
            h ^= c;
            h *= 0x100000001b3UL;
        }
        var mac = new byte[6];
        for (int i = 0; i < 6; i++) mac[i] = (byte)(h >> (8 * i));
        mac[0] = (byte)((mac[0] & 0xFC) | 0x02);
        return mac;
    }
}
