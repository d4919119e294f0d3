using System.Runtime.InteropServices;

using static Softnet.Capture.Live.LiveSyscalls;

namespace Softnet.Capture.Live;

/// <summary>
/// The libc calls and uapi constants an AF_PACKET port needs (linux/if_packet.h, linux/if_ether.h, sys/socket.h,
/// sys/mman.h, net/if.h). Layouts are the x86-64/arm64 ones; every struct is fixed-size and blittable.
/// </summary>
internal static unsafe class PacketSyscalls
{
    public const int AF_PACKET = 17;
    public const int SOCK_RAW = 3;
    public const int SOCK_CLOEXEC = 0x80000;
    public const ushort ETH_P_ALL = 0x0003;

    public const int SOL_SOCKET = 1;
    public const int SO_ERROR = 4;
    public const int SO_RCVTIMEO = 20;

    public const int SOL_PACKET = 263;
    public const int PACKET_RX_RING = 5;
    public const int PACKET_STATISTICS = 6;
    public const int PACKET_VERSION = 10;
    public const int PACKET_TX_RING = 13;
    public const int PACKET_LOSS = 14;
    public const int PACKET_VNET_HDR = 15;
    public const int PACKET_FANOUT = 18;
    public const int PACKET_QDISC_BYPASS = 20;
    public const int PACKET_IGNORE_OUTGOING = 23;

    public const int TPACKET_V3 = 2;
    public const int PACKET_FANOUT_HASH = 0;
    public const int PACKET_FANOUT_FLAG_UNIQUEID = 0x2000;
    public const int PACKET_FANOUT_FLAG_IGNORE_OUTGOING = 0x4000;

    // tp_status / block_status bits.
    public const uint TP_STATUS_KERNEL = 0;
    public const uint TP_STATUS_USER = 1;
    public const uint TP_STATUS_AVAILABLE = 0;
    public const uint TP_STATUS_SEND_REQUEST = 1;
    public const uint TP_STATUS_SENDING = 2;
    public const uint TP_STATUS_WRONG_FORMAT = 4;
    public const uint TP_STATUS_VLAN_VALID = 1 << 4;
    public const uint TP_STATUS_VLAN_TPID_VALID = 1 << 6;

    /// <summary>TPACKET_ALIGN(sizeof(struct tpacket3_hdr)): where a TX slot's frame bytes start (the kernel's
    /// tp_hdrlen minus sizeof(struct sockaddr_ll), tpacket_parse_header without PACKET_TX_HAS_OFF).</summary>
    public const int Tpacket3HdrLen = 48;

    // struct tpacket_block_desc: version, offset_to_priv, then tpacket_hdr_v1.
    public const int BlockStatusOffset = 8;
    public const int BlockNumPktsOffset = 12;
    public const int BlockFirstPktOffset = 16;

    // struct tpacket3_hdr.
    public const int HdrNextOffset = 0;
    public const int HdrSec = 4;
    public const int HdrNsec = 8;
    public const int HdrSnaplen = 12;
    public const int HdrLen = 16;
    public const int HdrStatus = 20;
    public const int HdrMac = 24;
    public const int HdrVlanTci = 32;
    public const int HdrVlanTpid = 36;
    /// <summary>The V3 tp_hdrlen: the header, then the sockaddr_ll the kernel writes after it; the frame (at tp_mac)
    /// starts past this plus the kernel's alignment gap.</summary>
    public const int Tpacket3HdrWithAddr = Tpacket3HdrLen + 20;

    /// <summary>struct virtio_net_hdr (PACKET_VNET_HDR): flags, gso_type, hdr_len, gso_size, csum_start,
    /// csum_offset, in host order on little-endian hosts (vio_le).</summary>
    public const int VnetHdrLen = 10;
    public const int VnetCsumStart = 6;
    public const int VnetCsumOffset = 8;
    public const byte VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;

    public const int PROT_READ = 1, PROT_WRITE = 2;
    public const int MAP_SHARED = 1, MAP_POPULATE = 0x8000;
    public static readonly nint MAP_FAILED = -1;

    public const short POLLIN = 1, POLLERR = 8;
    public const int MSG_DONTWAIT = 0x40;

    public const ulong SIOCGIFFLAGS = 0x8913;
    public const ulong SIOCGIFINDEX = 0x8933;
    public const short IFF_UP = 1, IFF_RUNNING = 0x40;

    public const int O_RDWR = 2, O_CREAT = 0x40, O_CLOEXEC = 0x80000;
    public const int LOCK_EX = 2, LOCK_NB = 4;

    public const int EPERM = 1, EINTR = 4, EAGAIN = 11, EACCES = 13, ENODEV = 19, ENOBUFS = 105, ENETDOWN = 100, ENXIO = 6;

    [StructLayout(LayoutKind.Sequential)]
    public struct TpacketReq3
    {
        public uint BlockSize, BlockNr, FrameSize, FrameNr, RetireBlkTov, SizeofPriv, FeatureReqWord;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct TpacketStatsV3
    {
        public uint Packets, Drops, FreezeQCnt;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct SockaddrLl
    {
        public ushort Family;
        public ushort Protocol;     // network order
        public int Ifindex;
        public ushort Hatype;
        public byte Pkttype, Halen;
        public ulong Addr;
    }

    /// <summary>struct ifreq: a 16-byte name and a 24-byte union (ifr_ifindex / ifr_flags at its start).</summary>
    [StructLayout(LayoutKind.Sequential, Size = 40)]
    public struct IfReq
    {
        public fixed byte Name[16];
        public int Value;
    }

    [DllImport("libc", SetLastError = true)] public static extern nint send(int fd, void* buf, nuint len, int flags);
    [DllImport("libc", SetLastError = true)] public static extern nint recv(int fd, void* buf, nuint len, int flags);

    public static int Errno => Marshal.GetLastPInvokeError();

    public static int SetInt(int fd, int level, int name, int value) => setsockopt(fd, level, name, &value, sizeof(int));

    /// <summary>An ifreq for <paramref name="ifname"/> (false when the name does not fit IFNAMSIZ).</summary>
    public static bool MakeIfReq(string ifname, out IfReq req)
    {
        req = default;
        if (ifname.Length == 0 || ifname.Length > 15) return false;
        fixed (byte* p = req.Name)
            for (int i = 0; i < ifname.Length; i++)
            {
                if (ifname[i] > 0x7e) return false;
                p[i] = (byte)ifname[i];
            }
        return true;
    }

    public static ushort Htons(ushort v) => (ushort)((v << 8) | (v >> 8));
}
