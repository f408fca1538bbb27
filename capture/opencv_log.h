#ifdef __cplusplus
extern "C" {
#endif
void siglipd_opencv_log_errors_only(void);
#ifdef __cplusplus
}
#endif
