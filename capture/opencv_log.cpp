#include <opencv2/core/utils/logger.hpp>
#include "opencv_log.h"

void siglipd_opencv_log_errors_only(void) {
    cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_ERROR);
}
