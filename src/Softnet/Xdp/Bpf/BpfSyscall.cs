using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;

namespace Softnet.Xdp.Bpf;

/// <summary>
/// The kernel's bpf(2) syscall for what Softnet needs from the real kernel: loading a program from raw instructions
/// (BPF_PROG_LOAD), creating and reading maps (BPF_MAP_*), and running a program on a frame (BPF_PROG_TEST_RUN,
/// bpf_prog_test_run_xdp). Used by the kernel comparisons and by `bench xdp` for the kernel's cost per packet; no
/// libbpf. Each call fills a zeroed union bpf_attr at the offsets include/uapi/linux/bpf.h gives (x86-64 layout,
/// every pointer an aligned u64), so the struct never has to be mirrored field by field.
/// </summary>
public static unsafe class BpfSyscall
{
    private const long SysBpf = 321; // __NR_bpf on x86-64
    private const int AttrSize = 144;

    public const int MapCreate = 0, MapLookupElem = 1, MapUpdateElem = 2, MapDeleteElem = 3, MapGetNextKey = 4,
        ProgLoad = 5, ProgTestRun = 10, ObjGetInfoByFd = 15, MapFreeze = 22, LinkCreate = 28;

    public const uint ProgTypeSocketFilter = 1, ProgTypeXdp = 6;
    /// <summary>enum bpf_attach_type values libbpf gives XDP programs as expected_attach_type.</summary>
    public const uint AttachXdp = 37, AttachXdpDevmap = 38, AttachXdpCpumap = 39;
    /// <summary>prog_flags BPF_F_XDP_HAS_FRAGS: the program handles multi-buffer frames (SEC("xdp.frags")).</summary>
    public const uint ProgFlagXdpHasFrags = 1 << 5;
    public const uint MapTypeHash = 1, MapTypeArray = 2, MapTypePercpuHash = 5, MapTypePercpuArray = 6, MapTypeLruHash = 9,
        MapTypeLpmTrie = 11, MapTypeXskmap = 17;
    /// <summary>XDP attach flags (include/uapi/linux/if_link.h): generic (skb) mode, or the driver's native hook.</summary>
    public const uint XdpFlagsSkbMode = 1 << 1, XdpFlagsDrvMode = 1 << 2;

    [DllImport("libc", SetLastError = true, EntryPoint = "syscall")]
    private static extern long Syscall(long number, long cmd, byte* attr, long size);

    [DllImport("libc", SetLastError = true)]
    private static extern int close(int fd);

    /// <summary>True on Linux x86-64, where the layouts and the syscall number here hold.</summary>
    public static bool Supported => OperatingSystem.IsLinux() && RuntimeInformation.ProcessArchitecture == Architecture.X64;

    private static long Call(int cmd, Span<byte> attr, out int errno)
    {
        fixed (byte* a = attr)
        {
            long r = Syscall(SysBpf, cmd, a, AttrSize);
            errno = r < 0 ? Marshal.GetLastPInvokeError() : 0;
            return r;
        }
    }

    private static void U32(Span<byte> a, int off, uint v) => BinaryPrimitives.WriteUInt32LittleEndian(a[off..], v);
    private static void U64(Span<byte> a, int off, ulong v) => BinaryPrimitives.WriteUInt64LittleEndian(a[off..], v);
    private static void Name(Span<byte> a, int off, string name)
    {
        // BPF_OBJ_NAME_LEN is 16 with the NUL; the kernel accepts [A-Za-z0-9_.] only.
        var n = Encoding.ASCII.GetBytes(name);
        n.AsSpan(0, Math.Min(n.Length, 15)).CopyTo(a.Slice(off, 15));
    }

    /// <summary>Closes a program or map descriptor. 0 and negative values mean "none" (an unset inner-map fd is 0), so
    /// standard input is never closed by mistake: a closed fd 0 would be handed to the next socket or pipe, and child
    /// processes would then inherit it as their stdin.</summary>
    public static void Close(int fd)
    {
        if (fd > 0) close(fd);
    }

    /// <summary>BPF_PROG_LOAD of raw 8-byte instructions (little-endian, as in an object file's section). Returns the
    /// program fd, or throws with the errno and the verifier's log when the kernel refuses it.</summary>
    public static int LoadProgram(uint progType, ReadOnlySpan<ulong> insns, string license = "GPL", string name = "softnet",
        uint expectedAttachType = 0, uint progFlags = 0)
    {
        var lic = Encoding.ASCII.GetBytes(license + "\0");
        var log = new byte[1 << 20];
        Span<byte> attr = stackalloc byte[AttrSize];
        while (true)
        {
            attr.Clear();
            fixed (ulong* ip = insns)
            fixed (byte* lp = lic)
            fixed (byte* logp = log)
            {
                U32(attr, 0, progType);
                U32(attr, 4, (uint)insns.Length);
                U64(attr, 8, (ulong)ip);
                U64(attr, 16, (ulong)lp);
                U32(attr, 24, 1); // log_level 1: the verifier explains a rejection
                U32(attr, 28, (uint)log.Length);
                U64(attr, 32, (ulong)logp);
                U32(attr, 44, progFlags);
                Name(attr, 48, name);
                U32(attr, 68, expectedAttachType);
                long fd = Call(ProgLoad, attr, out int errno);
                if (fd >= 0) return (int)fd;
                if (errno == 28 /* ENOSPC: log too small */ && log.Length < 1 << 26) { log = new byte[log.Length * 4]; continue; }
                int end = Array.IndexOf(log, (byte)0);
                throw new BpfSyscallException("BPF_PROG_LOAD", errno, Encoding.ASCII.GetString(log, 0, end < 0 ? log.Length : end));
            }
        }
    }

    /// <summary>BPF_MAP_CREATE without BTF (for array/hash of maps, <paramref name="innerMapFd"/> is the template every
    /// inner map must match). Returns the map fd.</summary>
    public static int CreateMap(uint mapType, uint keySize, uint valueSize, uint maxEntries, uint flags = 0, string name = "", int innerMapFd = 0)
    {
        Span<byte> attr = stackalloc byte[AttrSize];
        attr.Clear();
        U32(attr, 0, mapType);
        U32(attr, 4, keySize);
        U32(attr, 8, valueSize);
        U32(attr, 12, maxEntries);
        U32(attr, 16, flags);
        U32(attr, 20, (uint)innerMapFd);
        Name(attr, 28, name);
        long fd = Call(MapCreate, attr, out int errno);
        if (fd < 0) throw new BpfSyscallException("BPF_MAP_CREATE", errno, "");
        return (int)fd;
    }

    private static long Elem(int cmd, int mapFd, ReadOnlySpan<byte> key, Span<byte> value, ulong flags, out int errno)
    {
        Span<byte> attr = stackalloc byte[AttrSize];
        attr.Clear();
        fixed (byte* k = key)
        fixed (byte* v = value)
        {
            U32(attr, 0, (uint)mapFd);
            U64(attr, 8, (ulong)k);
            U64(attr, 16, (ulong)v);
            U64(attr, 24, flags);
            return Call(cmd, attr, out errno);
        }
    }

    /// <summary>BPF_MAP_UPDATE_ELEM (flags BPF_ANY 0, BPF_NOEXIST 1, BPF_EXIST 2).</summary>
    public static void UpdateElem(int mapFd, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags = 0)
    {
        fixed (byte* v = value)
        {
            if (Elem(MapUpdateElem, mapFd, key, new Span<byte>(v, value.Length), flags, out int errno) < 0)
                throw new BpfSyscallException("BPF_MAP_UPDATE_ELEM", errno, "");
        }
    }

    /// <summary>BPF_MAP_DELETE_ELEM; false when the key is absent.</summary>
    public static bool DeleteElem(int mapFd, ReadOnlySpan<byte> key)
    {
        if (Elem(MapDeleteElem, mapFd, key, default, 0, out int errno) >= 0) return true;
        if (errno == 2) return false;
        throw new BpfSyscallException("BPF_MAP_DELETE_ELEM", errno, "");
    }

    /// <summary>BPF_MAP_FREEZE: user space can no longer write the map (libbpf freezes .rodata after filling it, so the
    /// verifier may treat its contents as constants).</summary>
    public static void Freeze(int mapFd)
    {
        Span<byte> attr = stackalloc byte[AttrSize];
        attr.Clear();
        U32(attr, 0, (uint)mapFd);
        if (Call(MapFreeze, attr, out int errno) < 0) throw new BpfSyscallException("BPF_MAP_FREEZE", errno, "");
    }

    /// <summary>BPF_OBJ_GET_INFO_BY_FD: the id of a map or program (struct bpf_map_info / bpf_prog_info keep the id at
    /// offset 4), the handle `bpftool map dump id N` takes.</summary>
    public static uint ObjectId(int fd)
    {
        Span<byte> attr = stackalloc byte[AttrSize];
        Span<byte> info = stackalloc byte[256];
        attr.Clear();
        info.Clear();
        fixed (byte* ip = info)
        {
            U32(attr, 0, (uint)fd);
            U32(attr, 4, (uint)info.Length);
            U64(attr, 8, (ulong)ip);
            if (Call(ObjGetInfoByFd, attr, out int errno) < 0) throw new BpfSyscallException("BPF_OBJ_GET_INFO_BY_FD", errno, "");
        }
        return BinaryPrimitives.ReadUInt32LittleEndian(info[4..]);
    }

    /// <summary>BPF_MAP_LOOKUP_ELEM into <paramref name="value"/> (for a per-CPU map, value_size rounded up to 8 times
    /// the number of possible CPUs); false when the key is absent.</summary>
    public static bool LookupElem(int mapFd, ReadOnlySpan<byte> key, Span<byte> value)
    {
        if (Elem(MapLookupElem, mapFd, key, value, 0, out int errno) >= 0) return true;
        if (errno == 2 /* ENOENT */) return false;
        throw new BpfSyscallException("BPF_MAP_LOOKUP_ELEM", errno, "");
    }

    /// <summary>BPF_MAP_GET_NEXT_KEY: the key after <paramref name="key"/> (the first key when it is empty); false at the
    /// end.</summary>
    public static bool GetNextKey(int mapFd, ReadOnlySpan<byte> key, Span<byte> next)
    {
        if (Elem(MapGetNextKey, mapFd, key.IsEmpty ? default : key, next, 0, out int errno) >= 0) return true;
        if (errno == 2) return false;
        throw new BpfSyscallException("BPF_MAP_GET_NEXT_KEY", errno, "");
    }

    /// <summary>BPF_LINK_CREATE of an XDP program on a device (bpf_xdp_link_attach): attr.link_create is prog_fd,
    /// target_ifindex, attach_type BPF_XDP and the XDP_FLAGS_* mode. The ifindex is looked up in the calling thread's
    /// network namespace. Returns the link fd; closing it detaches the program.</summary>
    public static int LinkCreateXdp(int progFd, int ifindex, uint xdpFlags)
    {
        Span<byte> attr = stackalloc byte[AttrSize];
        attr.Clear();
        U32(attr, 0, (uint)progFd);
        U32(attr, 4, (uint)ifindex);
        U32(attr, 8, AttachXdp);
        U32(attr, 12, xdpFlags);
        long fd = Call(LinkCreate, attr, out int errno);
        if (fd < 0) throw new BpfSyscallException("BPF_LINK_CREATE", errno, "");
        return (int)fd;
    }

    /// <summary>The result of one BPF_PROG_TEST_RUN.</summary>
    public readonly record struct TestRunResult(uint ReturnValue, int DataOutLength, uint DurationNs, int CtxOutLength);

    /// <summary>BPF_PROG_TEST_RUN: runs the program <paramref name="repeat"/> times on <paramref name="data"/> (for XDP,
    /// the frame; the kernel gives it XDP_PACKET_HEADROOM of headroom) and writes the frame as the last run left it to
    /// <paramref name="dataOut"/>. <paramref name="ctxIn"/>/<paramref name="ctxOut"/> carry struct xdp_md
    /// (ingress_ifindex, rx_queue_index) when given. DurationNs is the kernel's mean time per run.</summary>
    public static TestRunResult TestRun(int progFd, ReadOnlySpan<byte> data, Span<byte> dataOut, uint repeat = 1,
        ReadOnlySpan<byte> ctxIn = default, Span<byte> ctxOut = default, uint flags = 0)
    {
        Span<byte> attr = stackalloc byte[AttrSize];
        attr.Clear();
        fixed (byte* di = data)
        fixed (byte* dout = dataOut)
        fixed (byte* ci = ctxIn)
        fixed (byte* cout = ctxOut)
        {
            U32(attr, 0, (uint)progFd);
            U32(attr, 8, (uint)data.Length);
            U32(attr, 12, (uint)dataOut.Length);
            U64(attr, 16, (ulong)di);
            U64(attr, 24, (ulong)dout);
            U32(attr, 32, repeat);
            if (!ctxIn.IsEmpty) { U32(attr, 40, (uint)ctxIn.Length); U64(attr, 48, (ulong)ci); }
            if (!ctxOut.IsEmpty) { U32(attr, 44, (uint)ctxOut.Length); U64(attr, 56, (ulong)cout); }
            U32(attr, 64, flags);
            if (Call(ProgTestRun, attr, out int errno) < 0) throw new BpfSyscallException("BPF_PROG_TEST_RUN", errno, "");
            return new TestRunResult(BinaryPrimitives.ReadUInt32LittleEndian(attr[4..]), (int)BinaryPrimitives.ReadUInt32LittleEndian(attr[12..]),
                BinaryPrimitives.ReadUInt32LittleEndian(attr[36..]), (int)BinaryPrimitives.ReadUInt32LittleEndian(attr[44..]));
        }
    }

    /// <summary>
    /// BPF_PROG_TEST_RUN of an XDP program with a struct xdp_md context (bpf_prog_test_run_xdp, xdp_convert_md_to_buff):
    /// no metadata, data_end the frame's length, and the ingress device and RX queue the program sees. The kernel looks
    /// <paramref name="ingressIfindex"/> up in the calling thread's network namespace and refuses a queue past the
    /// device's real_num_rx_queues; 0 keeps the default (the namespace's loopback, queue 0).
    /// </summary>
    public static TestRunResult TestRunXdp(int progFd, ReadOnlySpan<byte> data, Span<byte> dataOut, uint ingressIfindex, uint rxQueue, uint repeat = 1)
    {
        Span<byte> md = stackalloc byte[24];
        md.Clear();
        U32(md, 4, (uint)data.Length);   // data_end
        U32(md, 12, ingressIfindex);
        U32(md, 16, rxQueue);
        return TestRun(progFd, data, dataOut, repeat, md);
    }
}

/// <summary>A bpf(2) command the kernel refused: the command, errno and (for a program load) the verifier's log.</summary>
public sealed class BpfSyscallException(string command, int errno, string log)
    : Exception($"{command} failed: errno {errno} ({Marshal.GetPInvokeErrorMessage(errno)}){(log.Length > 0 ? "\n" + log.TrimEnd() : "")}")
{
    public int Errno { get; } = errno;
    public string VerifierLog { get; } = log;
}
