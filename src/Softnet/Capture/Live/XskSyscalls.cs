using System.Runtime.InteropServices;

using static Softnet.Capture.Live.LiveSyscalls;

namespace Softnet.Capture.Live;

/// <summary>
/// The libc calls and uapi constants an AF_XDP socket needs (include/uapi/linux/if_xdp.h, x86-64 layouts): the
/// socket, its UMEM and ring setsockopts, the ring mmaps, bind, the wakeup syscalls, poll, and the small helpers the
/// live ports share (SIOCGIFFLAGS, flock, rtnetlink link events). No libbpf or libxdp.
/// </summary>
internal static unsafe class XskSyscalls
{
    public const int AfXdp = 44, AfInet = 2, AfNetlink = 16;
    public const int SockRaw = 3, SockDgram = 2, SockNonblock = 0x800, SockCloexec = 0x80000;
    public const int SolXdp = 283;

    // setsockopt/getsockopt names at SOL_XDP.
    public const int XdpMmapOffsets = 1, XdpRxRing = 2, XdpTxRing = 3, XdpUmemReg = 4, XdpUmemFillRing = 5,
        XdpUmemCompletionRing = 6, XdpStatistics = 7, XdpOptions = 8;

    /// <summary>mmap page offsets that pick which ring of the socket is mapped.</summary>
    public const long XdpPgoffRxRing = 0, XdpPgoffTxRing = 0x80000000, XdpUmemPgoffFillRing = 0x100000000,
        XdpUmemPgoffCompletionRing = 0x180000000;

    /// <summary>sockaddr_xdp.sxdp_flags.</summary>
    public const ushort XdpCopy = 1 << 1, XdpZerocopy = 1 << 2, XdpUseNeedWakeup = 1 << 3;
    /// <summary>A ring's flags word: the kernel wants a syscall to make progress.</summary>
    public const uint XdpRingNeedWakeup = 1;
    /// <summary>XDP_OPTIONS answer: the socket is bound in zero-copy mode.</summary>
    public const uint XdpOptionsZerocopy = 1;

    public const int ProtRead = 1, ProtWrite = 2, MapShared = 1, MapPrivate = 2, MapAnonymous = 0x20, MapPopulate = 0x8000;
    public const int MsgDontwait = 0x40;
    public const short PollIn = 1;
    public const int LockEx = 2, LockNb = 4, LockUn = 8;
    public const int ORdwr = 2, OCreat = 0x40, OCloexec = 0x80000;
    public const int ClockMonotonic = 1;

    public const int Eintr = 4, Eagain = 11, Eperm = 1, Enobufs = 105, Ebusy = 16, Enetdown = 100, Enxio = 6, Enodev = 19;

    [DllImport("libc", SetLastError = true)] public static extern nint sendto(int fd, void* buf, nuint len, int flags, void* addr, uint alen);
    [DllImport("libc", SetLastError = true)] public static extern nint recvfrom(int fd, void* buf, nuint len, int flags, void* addr, void* alen);
    [DllImport("libc", SetLastError = true)] public static extern nint write(int fd, void* buf, nuint len);
    [DllImport("libc", SetLastError = true)] public static extern int ftruncate(int fd, long len);
    [DllImport("libc", SetLastError = true)] public static extern uint if_nametoindex([MarshalAs(UnmanagedType.LPUTF8Str)] string name);
    [DllImport("libc")] private static extern int clock_gettime(int clock, long* ts);

    public static int Errno => Marshal.GetLastPInvokeError();

    /// <summary>CLOCK_MONOTONIC in nanoseconds (the clock the kernel's ktime_get uses).</summary>
    public static long MonotonicNs()
    {
        long* ts = stackalloc long[2];
        clock_gettime(ClockMonotonic, ts);
        return ts[0] * 1_000_000_000 + ts[1];
    }

    public static void SetInt(int fd, int level, int name, int value, string what)
    {
        if (setsockopt(fd, level, name, &value, 4) != 0)
            throw new LivePortException($"setsockopt {what}: {Describe(Errno)}", Errno);
    }

    public static string Describe(int errno) => $"errno {errno} ({Marshal.GetPInvokeErrorMessage(errno)})";

    /// <summary>A non-blocking rtnetlink socket subscribed to RTMGRP_LINK in the current namespace: every RTM_NEWLINK
    /// (up, down, carrier) arrives there, so a down/up that happens between two reads is still seen.</summary>
    public static int OpenLinkEvents()
    {
        int fd = socket(AfNetlink, SockRaw | SockNonblock | SockCloexec, 0 /* NETLINK_ROUTE */);
        if (fd < 0) return -1;
        byte* sa = stackalloc byte[12];
        new Span<byte>(sa, 12).Clear();
        *(ushort*)sa = AfNetlink;
        *(uint*)(sa + 8) = 1; // RTMGRP_LINK
        if (bind(fd, sa, 12) != 0) { close(fd); return -1; }
        return fd;
    }
}
